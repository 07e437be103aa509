-- The demo's own table: disabled in a vendor's project (eoy_reset_demo).
{{ config(enabled=eoy_reset_demo()) }}

with

source as (

    select * from {{ source('app', 'classroom_enrollments') }}

),

renamed as (

    select

        -- ids
        classroom_id,
        student_id,
        district_id

    from source

)

select * from renamed
