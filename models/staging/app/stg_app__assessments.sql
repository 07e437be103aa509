with

source as (

    select * from {{ source('app', 'assessments') }}

),

renamed as (

    select

        -- ids
        assessment_id,
        district_id,
        student_id,
        -- attributes
        product,
        assessment_type,
        -- numbers
        scaled_score,
        -- dates
        taken_at

    from source

)

select * from renamed
