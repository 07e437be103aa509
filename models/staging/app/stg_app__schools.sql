with

source as (

    select * from {{ source('app', 'schools') }}

),

renamed as (

    select

        -- ids
        school_id,
        district_id,
        -- attributes
        name

    from source

)

select * from renamed
