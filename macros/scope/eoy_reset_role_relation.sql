{#-
    eoy_reset_role_relation(role): where the rows of a role live. 'districts': the table
    declared role: districts (a build without one stops with a sentence); 'syncs',
    'requests', 'rostering': the table declared with that role, else eoy-reset's own table
    of the same columns in schema eoy_runner.
    eoy_reset_role_key(role): the declared district id column of the districts table.
-#}
{% macro eoy_reset_role_relation(role) %}
    {%- for table in eoy_reset_declared_tables() -%}
        {%- if table.decl.get('role') == role -%}
            {{ return(table.relation) }}
        {%- endif -%}
    {%- endfor -%}
    {%- set own = {
        'districts': 'districts',
        'syncs': 'import_syncs',
        'requests': 'district_reset_requests',
        'rostering': 'rostering_runs',
    } -%}
    {%- if role == 'districts' and execute -%}
        {{ exceptions.raise_compiler_error(
            "no table of the project's sources declares meta.eoy_reset role: districts "
            ~ "(the one row per district): declare it, with key: its district id column"
        ) }}
    {%- endif -%}
    {{ return(api.Relation.create(database=target.database, schema='eoy_runner', identifier=own[role])) }}
{% endmacro %}

{% macro eoy_reset_role_key() %}
    {%- for table in eoy_reset_declared_tables() -%}
        {%- if table.decl.get('role') == 'districts' -%}
            {%- set key = table.decl.get('key') -%}
            {{ return(key if key is string else key[0]) }}
        {%- endif -%}
    {%- endfor -%}
    {{ return('district_id') }}
{% endmacro %}
