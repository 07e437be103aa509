-- The demo's own table: disabled in a vendor's project (eoy_reset_demo).
{{ config(enabled=eoy_reset_demo()) }}

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
