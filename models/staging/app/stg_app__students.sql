with

source as (

    select * from {{ source('app', 'students') }}

),

renamed as (

    select

        -- ids
        student_id,
        district_id,
        school_id,
        -- attributes
        username,
        first_name,
        last_name,
        grade_level,
        -- dates
        created_at

    from source

)

select * from renamed
