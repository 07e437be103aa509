-- The demo's own table: disabled in a vendor's project (eoy_reset_demo).
{{ config(enabled=eoy_reset_demo()) }}

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
