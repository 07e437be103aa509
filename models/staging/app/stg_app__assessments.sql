-- The demo's own table: disabled in a vendor's project (eoy_reset_demo).
{{ config(enabled=eoy_reset_demo()) }}

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
