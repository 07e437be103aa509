-- The demo's own table: disabled in a vendor's project (eoy_reset_demo).
{{ config(enabled=eoy_reset_demo()) }}

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
