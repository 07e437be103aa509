{#- Districts of the audited school year that need someone: due (reset date passed, status
    scheduled) with no completed run, and blocked districts a CSM must re-date. A restored
    district is listed too (its student data is back): the runner holds it until a CSM sets
    a new reset date. -#}
{%- set as_of = "cast('" ~ reset_as_of_date() ~ "' as date)" %}
{%- set school_year = reset_school_year() %}
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

open_resets as (

    select
        schedule.district_id,
        schedule.school_year,
        schedule.effective_reset_date,
        schedule.date_source,
        schedule.status as schedule_status,
        coalesce(schedule.issues, '') as schedule_issues,
        runs.status as run_status,
        runs.error as run_error
    from schedule
    left join runs
        on runs.district_id = schedule.district_id
        and runs.school_year = schedule.school_year
    where schedule.school_year = {{ school_year }}
        and coalesce(runs.status, '') <> 'completed'

),

final as (

    select
        -- ids
        open_resets.district_id,
        districts.name as district_name,
        open_resets.school_year,
        -- schedule
        open_resets.effective_reset_date,
        open_resets.date_source,
        open_resets.schedule_status,
        open_resets.schedule_issues,
        -- why it is listed
        case
            when open_resets.schedule_status = 'blocked' then 'blocked'
            when open_resets.run_status is null then 'not_started'
            else open_resets.run_status
        end as reason,
        -- a CSM must agree a new date: blocked by rostering, or restored on request
        coalesce(
            open_resets.schedule_status = 'blocked' or open_resets.run_status = 'restored', false
        ) as needs_csm,
        open_resets.run_status,
        open_resets.run_error,
        -- numbers
        {{ dbt.datediff('open_resets.effective_reset_date', as_of, 'day') }}
            as days_past_reset_date

    from open_resets
    left join districts
        on districts.district_id = open_resets.district_id
    where open_resets.schedule_status = 'blocked'
        or (
            open_resets.schedule_status = 'scheduled'
            and open_resets.effective_reset_date <= {{ as_of }}
        )

)

select * from final
