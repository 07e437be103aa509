{#- One row per district and school year: the audited school year for every district,
    plus every run the ledger holds (earlier years too). -#}
{%- set school_year = reset_school_year() %}
with

district_years as (

    select * from {{ ref('int_audit_district_years') }}

),

events as (

    select * from {{ ref('stg_eoy_runner__reset_events') }}

),

due_districts as (

    select * from {{ ref('due_districts') }}

),

import_syncs as (

    select * from {{ ref('stg_app__import_syncs') }}

),

audited as (

    select * from district_years
    where (is_scheduled and school_year = {{ school_year }})
        or has_run

),

sync_events as (

    select
        district_id,
        school_year,
        max(case when step = 'pause_syncs' and status = 'completed' then "at" end)
            as syncs_paused_at,
        max(case when step = 'resume_syncs' and status = 'completed' then "at" end)
            as syncs_resumed_at
    from events
    group by district_id, school_year

),

last_events as (

    select
        district_id,
        school_year,
        step,
        status,
        "at",
        row_number() over (
            partition by district_id, school_year order by "at" desc, event_id desc
        ) as recency
    from events

),

purges as (

    select district_id, school_year, max("at") as purged_at
    from events
    where step = 'purge_snapshots' and status = 'completed'
    group by district_id, school_year

),

latest_run_years as (

    select district_id, max(school_year) as school_year
    from district_years
    where has_run
    group by district_id

),

current_syncs as (

    select
        district_id,
        count(*) as syncs_total,
        sum(case when status = 'paused' then 1 else 0 end) as syncs_paused_now,
        max(paused_at) as last_paused_at,
        max(resumed_at) as last_resumed_at
    from import_syncs
    group by district_id

),

joined as (

    select
        -- ids
        audited.district_id,
        audited.district_name,
        audited.school_year,
        -- schedule
        audited.effective_reset_date,
        audited.date_source,
        audited.schedule_status,
        audited.schedule_issues,
        -- ledger
        case
            when audited.run_status is not null then audited.run_status
            when audited.schedule_status = 'blocked' then 'blocked'
            else 'not_started'
        end as status,
        -- due as the build saw it, and not completed since (a run's build comes before its resets)
        due_districts.district_id is not null and coalesce(audited.run_status, '') <> 'completed'
            as is_due,
        audited.run_started_at,
        audited.run_finished_at,
        audited.rows_deleted,
        audited.snapshot_path,
        audited.manifest_sha256,
        -- a snapshot taken again after a purge is there
        case
            when audited.run_started_at is null or purges.purged_at >= audited.run_started_at
                then purges.purged_at
        end as snapshot_purged_at,
        audited.run_error,
        last_events.step as last_step,
        last_events.status as last_step_status,
        last_events."at" as last_step_at,
        -- import syncs: the ledger's times; app.import_syncs only for a district's latest run
        coalesce(
            sync_events.syncs_paused_at,
            case when latest_run_years.school_year is not null then current_syncs.last_paused_at end
        ) as syncs_paused_at,
        coalesce(
            sync_events.syncs_resumed_at,
            case
                when latest_run_years.school_year is not null
                    and current_syncs.last_resumed_at >= current_syncs.last_paused_at
                    then current_syncs.last_resumed_at
            end
        ) as syncs_resumed_at,
        coalesce(current_syncs.syncs_total, 0) as syncs_total,
        coalesce(current_syncs.syncs_paused_now, 0) as syncs_paused_now

    from audited
    left join due_districts
        on due_districts.district_id = audited.district_id
        and due_districts.school_year = audited.school_year
    left join sync_events
        on sync_events.district_id = audited.district_id
        and sync_events.school_year = audited.school_year
    left join last_events
        on last_events.district_id = audited.district_id
        and last_events.school_year = audited.school_year
        and last_events.recency = 1
    left join purges
        on purges.district_id = audited.district_id
        and purges.school_year = audited.school_year
    left join latest_run_years
        on latest_run_years.district_id = audited.district_id
        and latest_run_years.school_year = audited.school_year
    left join current_syncs
        on current_syncs.district_id = audited.district_id

)

select * from joined
