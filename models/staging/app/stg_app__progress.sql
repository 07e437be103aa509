with

source as (

    select * from {{ source('app', 'progress') }}

),

renamed as (

    select

        -- ids
        progress_id,
        district_id,
        student_id,
        lesson_id,
        -- attributes
        product,
        status,
        -- numbers
        score,
        -- dates
        completed_at

    from source

)

select * from renamed
