-- The table the scope declares role: rostering (or eoy-reset's own in eoy_runner).
with

source as (

    select * from {{ eoy_reset_role_relation('rostering') }}

),

renamed as (

    select

        -- ids
        cast(district_id as {{ dbt.type_string() }}) as district_id,
        -- numbers
        school_year,
        -- dates
        completed_at

    from source

)

select * from renamed
