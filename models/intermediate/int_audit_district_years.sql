-- One row per district and school year that the schedule or the ledger's runs know: the
-- district's name, its reset date as the rules give it, and its run, if any. The audit models
-- of the schedule read it.
with

schedule as (

    select * from {{ ref('reset_schedule') }}

),

runs as (

    select * from {{ ref('stg_eoy_runner__reset_runs') }}

),

districts as (

    select * from {{ ref('stg_app__districts') }}

),

final as (

    select
        -- ids
        coalesce(schedule.district_id, runs.district_id) as district_id,
        districts.name as district_name,
        coalesce(schedule.school_year, runs.school_year) as school_year,
        -- which side knows the year
        schedule.district_id is not null as is_scheduled,
        runs.district_id is not null as has_run,
        -- schedule
        schedule.effective_reset_date,
        schedule.date_source,
        schedule.status as schedule_status,
        coalesce(schedule.issues, '') as schedule_issues,
        -- ledger
        runs.status as run_status,
        runs.started_at as run_started_at,
        runs.finished_at as run_finished_at,
        runs.rows_deleted,
        runs.snapshot_path,
        runs.manifest_sha256,
        runs.error as run_error

    from schedule
    full outer join runs
        on runs.district_id = schedule.district_id
        and runs.school_year = schedule.school_year
    left join districts
        on districts.district_id = coalesce(schedule.district_id, runs.district_id)

)

select * from final
