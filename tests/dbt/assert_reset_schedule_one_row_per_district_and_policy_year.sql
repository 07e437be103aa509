-- reset_schedule holds exactly one row per district and school year of the policy seed.
with

expected as (

    select districts.district_id, policy.school_year
    from {{ ref('stg_app__districts') }} as districts
    cross join {{ ref('reset_policy') }} as policy

),

actual as (

    select district_id, school_year, count(*) as n_rows
    from {{ ref('reset_schedule') }}
    group by district_id, school_year

)

select
    coalesce(expected.district_id, actual.district_id) as district_id,
    coalesce(expected.school_year, actual.school_year) as school_year,
    coalesce(actual.n_rows, 0) as n_rows
from expected
full outer join actual
    on actual.district_id = expected.district_id
    and actual.school_year = expected.school_year
where coalesce(actual.n_rows, 0) <> 1 or expected.district_id is null
