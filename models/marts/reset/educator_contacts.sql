-- Who an inactive educator is and whom a notice goes to: each educator's name, email, role
-- and school name, read through (a view: the warehouse keeps no copy of an address) by the
-- notices and the console. Educators are no part of the declared scope: the demo's come
-- from its schema app; a vendor's project has none, and this is empty (eoy_reset_demo).
{{ config(materialized='view') }}

with

educators as (

    select * from {{ ref('stg_app__educators') }}

),

{%- if eoy_reset_demo() %}

schools as (

    select school_id, name from {{ ref('stg_app__schools') }}

),
{%- endif %}

final as (

    select
        -- ids
        educators.educator_id,
        educators.district_id,
        educators.school_id,
        -- attributes
        educators.first_name,
        educators.last_name,
        educators.email,
        educators.role,
        {%- if eoy_reset_demo() %}
        schools.name as school_name
        {%- else %}
        cast(null as {{ dbt.type_string() }}) as school_name
        {%- endif %}

    from educators
    {%- if eoy_reset_demo() %}
    left join schools
        on schools.school_id = educators.school_id
    {%- endif %}

)

select * from final
