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
            {{ return(eoy_reset_retained_column(table)) }}
        {%- endif -%}
    {%- endfor -%}
    {{ return('district_id') }}
{% endmacro %}

{#-
    eoy_reset_retained_tables(declared, counted): the retained tables among `declared` (an
    eoy_reset_declared_tables() list; every declared table when none), in order, each: name
    (its label), qualified, relation, and column: the column holding its district as the
    runner checks it unchanged after a pass (eoy_reset_retained_column; none for a table
    checked whole, its count the whole table's). counted=true adds `counted`: the column
    reset_scope counts what stays of a district by (`column`, else district_id), none when
    the catalog shows no such column (one catalog query).
-#}
{% macro eoy_reset_retained_tables(declared=none, counted=false) %}
    {%- set found = [] -%}
    {%- for table in (eoy_reset_declared_tables() if declared is none else declared) -%}
        {%- if table.decl.get('action') != 'delete' -%}
            {%- do found.append({
                'name': table.label, 'qualified': table.qualified,
                'relation': table.relation, 'column': eoy_reset_retained_column(table),
            }) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if counted -%}
        {%- set columns_of = eoy_reset_columns(found) -%}
        {%- for table in found -%}
            {%- set column = table.column or 'district_id' -%}
            {%- set names = columns_of[table.qualified] | map(attribute='name') | map('lower') | list -%}
            {%- do table.update({'counted': column if column | lower in names else none}) -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return(found) }}
{% endmacro %}

{#-
    eoy_reset_retained_column(table): the column of a retained table that holds its
    district, as the runner reads the declaration: the districts table's key (its first
    column when a list), or the table's own `district:`; none when it declares none.
-#}
{% macro eoy_reset_retained_column(table) %}
    {%- if table.decl.get('role') == 'districts' -%}
        {%- set key = table.decl.get('key') -%}
        {{ return(key if key is string else key[0]) }}
    {%- endif -%}
    {%- set column = table.decl.get('district') -%}
    {{ return(column if column is string else none) }}
{% endmacro %}
