-- The demo's own table: disabled in a vendor's project (eoy_reset_demo).
{{ config(enabled=eoy_reset_demo()) }}

with

source as (

    select * from {{ source('app', 'schools') }}

),

renamed as (

    select

        -- ids
        school_id,
        district_id,
        -- attributes
        name

    from source

)

select * from renamed
