-- One row per district and school year of the policy seed, with the CSM's request
-- row (if any) beside the policy dates: the inputs of the reset-date rules, not yet judged.
with

districts as (

    select district_id from {{ ref('stg_app__districts') }}

),

policy as (

    select
        school_year,
        default_reset_date,
        earliest_reset_date
    from {{ ref('reset_policy') }}

),

requests as (

    select * from {{ ref('stg_app__district_reset_requests') }}

),

joined as (

    select

        -- ids
        districts.district_id,
        policy.school_year,
        -- policy dates (D, E)
        policy.default_reset_date,
        policy.earliest_reset_date,
        -- the request row; no row means the district did not respond
        requests.district_id is not null as has_request_row,
        requests.requested_reset_date,
        requests.school_year_end_date,
        requests.summer_session_end_date,
        requests.rostering_start_date

    from districts
    cross join policy
    left join requests
        on requests.district_id = districts.district_id
        and requests.school_year = policy.school_year

)

select * from joined
