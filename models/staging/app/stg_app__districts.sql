-- The districts table the scope declares (role: districts), its id as text.
{%- set relation = eoy_reset_role_relation('districts') %}
{%- set columns = adapter.get_columns_in_relation(relation) | map(attribute='name') | map('lower') | list if execute else [] %}

with

source as (

    select * from {{ relation }}

),

renamed as (

    select

        -- ids
        cast({{ eoy_reset_role_key() }} as {{ dbt.type_string() }}) as district_id,
        -- attributes (a declared districts table may have neither)
        {{ 'name' if 'name' in columns else 'cast(null as ' ~ dbt.type_string() ~ ')' }} as name,
        {{ 'state' if 'state' in columns else 'cast(null as ' ~ dbt.type_string() ~ ')' }} as state

    from source

)

select * from renamed
