-- Educators "no longer with the organization or using the program": never
-- logged in, or idle more than var inactive_educator_days before the district's reset
-- date. A recommendation only; nobody is deleted. No names or emails.
{%- set idle_days = var('inactive_educator_days', 365) | int %}

with

schedule as (

    select district_id, school_year, effective_reset_date
    from {{ ref('reset_schedule') }}

),

educators as (

    select
        educator_id,
        district_id,
        school_id,
        role,
        last_login_at
    from {{ ref('stg_app__educators') }}

),

measured as (

    select
        educators.educator_id,
        educators.district_id,
        schedule.school_year,
        educators.school_id,
        educators.role,
        educators.last_login_at,
        schedule.effective_reset_date,
        {{ dbt.datediff(
            'cast(educators.last_login_at as date)', 'schedule.effective_reset_date', 'day'
        ) }}
            as days_inactive
    from educators
    inner join schedule
        on schedule.district_id = educators.district_id

),

final as (

    select
        educator_id,
        district_id,
        school_year,
        school_id,
        role,
        last_login_at,
        effective_reset_date,
        days_inactive,
        cast(
            case when last_login_at is null then 'never_logged_in' else 'inactive' end
            as {{ dbt.type_string() }}
        ) as reason
    from measured
    where last_login_at is null
        or days_inactive > {{ idle_days }}

)

select * from final
