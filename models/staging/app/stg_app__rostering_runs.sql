with

source as (

    select * from {{ source('app', 'rostering_runs') }}

),

renamed as (

    select

        -- ids
        district_id,
        -- numbers
        school_year,
        -- dates
        completed_at

    from source

)

select * from renamed
