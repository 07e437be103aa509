{#- Scheduled resets in the `upcoming_days` days after the as-of date, for notices to the
    districts (the sync pause and the reset itself). -#}
{%- set as_of = "cast('" ~ reset_as_of_date() ~ "' as date)" %}
{%- set upcoming_days = var('upcoming_days', 30) | string | trim -%}
{%- if not modules.re.match('^[0-9]+$', upcoming_days) -%}
    {{ exceptions.raise_compiler_error("var upcoming_days '" ~ upcoming_days ~ "' is not a whole number of days") }}
{%- endif -%}
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

import_syncs as (

    select * from {{ ref('stg_app__import_syncs') }}

),

syncs as (

    select
        district_id,
        count(*) as syncs_total,
        sum(case when status = 'active' then 1 else 0 end) as syncs_active
    from import_syncs
    group by district_id

),

final as (

    select
        -- ids
        schedule.district_id,
        districts.name as district_name,
        schedule.school_year,
        -- schedule
        schedule.effective_reset_date,
        schedule.date_source,
        coalesce(schedule.issues, '') as schedule_issues,
        -- numbers
        {{ dbt.datediff(as_of, 'schedule.effective_reset_date', 'day') }}
            as days_until_reset,
        coalesce(syncs.syncs_active, 0) as syncs_to_pause

    from schedule
    left join runs
        on runs.district_id = schedule.district_id
        and runs.school_year = schedule.school_year
    left join districts
        on districts.district_id = schedule.district_id
    left join syncs
        on syncs.district_id = schedule.district_id
    where schedule.status = 'scheduled'
        and coalesce(runs.status, '') <> 'completed'
        and schedule.effective_reset_date > {{ as_of }}
        and schedule.effective_reset_date
            <= cast({{ dbt.dateadd('day', upcoming_days, as_of) }} as date)

)

select * from final
