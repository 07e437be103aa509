-- The demo's own table: disabled in a vendor's project (eoy_reset_demo).
{{ config(enabled=eoy_reset_demo()) }}

with

source as (

    select * from {{ source('app', 'usage_sessions') }}

),

renamed as (

    select

        -- ids
        session_id,
        district_id,
        student_id,
        -- attributes
        product,
        -- numbers
        minutes,
        -- dates
        started_at

    from source

)

select * from renamed
