{#- Scheduled resets in the `upcoming_days` days after the as-of date, for notices to the
    districts (the sync pause and the reset itself). -#}
{%- set as_of = "cast('" ~ reset_as_of_date() ~ "' as date)" %}
{%- set upcoming_days = var('upcoming_days', 30) | string | trim -%}
{%- if not modules.re.match('^[0-9]+$', upcoming_days) -%}
    {{ exceptions.raise_compiler_error("var upcoming_days '" ~ upcoming_days ~ "' is not a whole number of days") }}
{%- endif -%}
with

district_years as (

    select * from {{ ref('int_audit_district_years') }}

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
        district_years.district_id,
        district_years.district_name,
        district_years.school_year,
        -- schedule
        district_years.effective_reset_date,
        district_years.date_source,
        district_years.schedule_issues,
        -- numbers
        {{ dbt.datediff(as_of, 'district_years.effective_reset_date', 'day') }}
            as days_until_reset,
        coalesce(syncs.syncs_active, 0) as syncs_to_pause

    from district_years
    left join syncs
        on syncs.district_id = district_years.district_id
    where district_years.schedule_status = 'scheduled'
        and coalesce(district_years.run_status, '') <> 'completed'
        and district_years.effective_reset_date > {{ as_of }}
        and district_years.effective_reset_date
            <= cast({{ dbt.dateadd('day', upcoming_days, as_of) }} as date)

)

select * from final
