with

source as (

    select * from {{ source('app', 'district_reset_requests') }}

),

renamed as (

    select

        -- ids
        district_id,
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
