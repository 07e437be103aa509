-- The table the scope declares role: requests (or eoy-reset's own in eoy_runner).
with

source as (

    select * from {{ eoy_reset_role_relation('requests') }}

),

renamed as (

    select

        -- ids
        cast(district_id as {{ dbt.type_string() }}) as district_id,
        -- numbers
        school_year,
        -- dates
        requested_reset_date,
        school_year_end_date,
        summer_session_end_date,
        rostering_start_date

    from source

)

select * from renamed
