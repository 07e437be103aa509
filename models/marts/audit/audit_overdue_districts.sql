{#- Districts of the audited school year that need someone: due (reset date passed, status
    scheduled) with no completed run, and blocked districts a CSM must re-date. A restored
    district is listed too (its student data is back): the runner holds it until a CSM sets
    a new reset date. -#}
{%- set as_of = "cast('" ~ reset_as_of_date() ~ "' as date)" %}
{%- set school_year = reset_school_year() %}
with

district_years as (

    select * from {{ ref('int_audit_district_years') }}

),

open_resets as (

    select * from district_years
    where school_year = {{ school_year }}
        and is_scheduled
        and coalesce(run_status, '') <> 'completed'

),

final as (

    select
        -- ids
        open_resets.district_id,
        open_resets.district_name,
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
    where open_resets.schedule_status = 'blocked'
        or (
            open_resets.schedule_status = 'scheduled'
            and open_resets.effective_reset_date <= {{ as_of }}
        )

)

select * from final
