with

source as (

    select * from {{ source('app', 'classrooms') }}

),

renamed as (

    select

        -- ids
        classroom_id,
        district_id,
        school_id,
        educator_id,
        -- attributes
        product,
        name,
        -- dates
        created_at

    from source

)

select * from renamed
