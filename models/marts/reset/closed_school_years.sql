-- School years that the new year's rostering closed, per district: once rostering for
-- school year Y + 1 has completed, the live rows are next year's and no pass for Y may run.
with

rostering as (

    select * from {{ ref('stg_app__rostering_runs') }}

),

final as (

    select
        -- ids
        district_id,
        -- numbers
        cast(school_year - 1 as integer) as school_year,
        cast(school_year as integer) as rostering_school_year,
        -- dates
        min(completed_at) as rostering_completed_at
    from rostering
    where completed_at is not null
    group by district_id, school_year

)

select * from final
