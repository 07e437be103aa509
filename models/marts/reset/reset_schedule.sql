-- The reset date of every district for every school year of the policy.
with

resolved as (

    select * from {{ ref('int_reset_dates_resolved') }}

),

final as (

    select
        district_id,
        school_year,
        effective_reset_date,
        date_source,
        status,
        issues
    from resolved

)

select * from final
