-- What was certified to districts and what is still owed: one row per district, school year
-- and kind of certificate where one was issued or is owed. A completed reset owes a
-- certificate of disposition issued since the reset began; a purge owes a "copy destroyed"
-- certificate issued since the purge. A certificate of disposition whose reset is no longer
-- completed (restored since) is void. Ids, dates and hashes only.

with

runs as (

    select * from {{ ref('stg_eoy_runner__reset_runs') }}

),

events as (

    select * from {{ ref('stg_eoy_runner__reset_events') }}

),

certificates as (

    select * from {{ ref('stg_eoy_runner__certificates') }}

),

districts as (

    select * from {{ ref('stg_app__districts') }}

),

purges as (

    select
        district_id,
        school_year,
        max("at") as last_purged_at
    from events
    where step = 'purge_snapshots' and status = 'completed'
    group by district_id, school_year

),

ranked as (

    select
        *,
        row_number() over (
            partition by district_id, school_year, kind
            order by issued_at desc, certificate_id desc
        ) as recency,
        count(*) over (partition by district_id, school_year, kind) as certificates_issued
    from certificates

),

last_certificate as (

    select * from ranked where recency = 1

),

obligations as (

    select district_id, school_year, cast('disposition' as {{ dbt.type_string() }}) as kind
    from runs
    where status = 'completed'

    union

    select district_id, school_year, cast('copy_destroyed' as {{ dbt.type_string() }}) as kind
    from purges

    union

    select district_id, school_year, kind
    from last_certificate

),

final as (

    select

        -- ids
        obligations.district_id,
        districts.name as district_name,
        obligations.school_year,
        obligations.kind,
        -- where it stands
        cast(
            case
                when obligations.kind = 'disposition' and runs.status = 'completed'
                    and last_certificate.issued_at >= runs.started_at then 'certified'
                when obligations.kind = 'disposition' and runs.status = 'completed'
                    then 'owed'
                when obligations.kind = 'disposition' then 'void'
                when last_certificate.issued_at >= purges.last_purged_at then 'certified'
                else 'owed'
            end as {{ dbt.type_string() }}
        ) as certificate_status,
        runs.status as run_status,
        case when runs.status = 'completed' then runs.finished_at end as reset_completed_at,
        purges.last_purged_at,
        -- the latest certificate of the kind
        coalesce(last_certificate.certificates_issued, 0) as certificates_issued,
        last_certificate.issued_at,
        last_certificate.document_sha256,
        last_certificate.key_fingerprint,
        last_certificate.written_to

    from obligations
    left join runs
        on runs.district_id = obligations.district_id
        and runs.school_year = obligations.school_year
    left join purges
        on purges.district_id = obligations.district_id
        and purges.school_year = obligations.school_year
    left join last_certificate
        on last_certificate.district_id = obligations.district_id
        and last_certificate.school_year = obligations.school_year
        and last_certificate.kind = obligations.kind
    left join districts
        on districts.district_id = obligations.district_id

)

select * from final
