-- The demo's educators. Educators are no part of the declared scope: in a vendor's project
-- (eoy_reset_demo false) this is empty with the same columns, so no educator is listed
-- as inactive and no notice names an administrator of the demo.
{%- if eoy_reset_demo() %}
with

source as (

    select * from {{ source('app', 'educators') }}

),

renamed as (

    select

        -- ids
        educator_id,
        district_id,
        school_id,
        -- attributes
        email,
        first_name,
        last_name,
        role,
        -- dates
        last_login_at,
        created_at

    from source

)

select * from renamed
{%- else %}

select
    -- ids
    cast(null as {{ dbt.type_string() }}) as educator_id,
    cast(null as {{ dbt.type_string() }}) as district_id,
    cast(null as {{ dbt.type_string() }}) as school_id,
    -- attributes
    cast(null as {{ dbt.type_string() }}) as email,
    cast(null as {{ dbt.type_string() }}) as first_name,
    cast(null as {{ dbt.type_string() }}) as last_name,
    cast(null as {{ dbt.type_string() }}) as role,
    -- dates
    cast(null as {{ dbt.type_timestamp() }}) as last_login_at,
    cast(null as {{ dbt.type_timestamp() }}) as created_at
where 1 = 0
{%- endif %}
