-- The demo's own table: disabled in a vendor's project (eoy_reset_demo).
{{ config(enabled=eoy_reset_demo()) }}

with

source as (

    select * from {{ source('app', 'pathways') }}

),

renamed as (

    select

        -- ids
        pathway_id,
        district_id,
        student_id,
        -- attributes
        product,
        pathway_name,
        grade_band,
        -- dates
        assigned_at

    from source

)

select * from renamed
