-- The districts table the scope declares (role: districts), its id as text.
{%- set relation = eoy_reset_role_relation('districts') %}
{%- set columns = [] %}
{%- if execute %}
    {%- set found = adapter.get_columns_in_relation(relation) %}
    {%- set columns = found | map(attribute='name') | map('lower') | list %}
{%- endif %}
{%- set missing = 'cast(null as ' ~ dbt.type_string() ~ ')' %}

with

source as (

    select * from {{ relation }}

),

renamed as (

    select

        -- ids
        cast({{ eoy_reset_role_key() }} as {{ dbt.type_string() }}) as district_id,
        -- attributes (a declared districts table may have neither)
        {{ 'name' if 'name' in columns else missing }} as name,  -- noqa: RF04
        {{ 'state' if 'state' in columns else missing }} as state  -- noqa: RF04

    from source

)

select * from renamed
