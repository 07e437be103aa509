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

{#-
    eoy_reset_retained_by_district(): the retained tables that carry the district's id in a
    column of their own (the districts table's key, a declared `district:`, else
    district_id): name (the table's label), qualified, relation, column. What stays of a
    district, as reset_scope counts it; the audit counts retained tables as the runner checks
    them (eoy_reset_retained_checks).
-#}
{% macro eoy_reset_retained_by_district() %}
    {%- set found = [] -%}
    {%- set retained = eoy_reset_declared_tables('retain') -%}
    {%- set columns_of = eoy_reset_columns(retained) -%}
    {%- for table in retained -%}
        {%- set column = eoy_reset_retained_column(table) or 'district_id' -%}
        {%- set columns = columns_of[table.qualified] | map(attribute='name') | map('lower') | list -%}
        {%- if column | lower in columns -%}
            {%- do found.append({
                'name': table.label, 'qualified': table.qualified,
                'relation': table.relation, 'column': column,
            }) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(found) }}
{% endmacro %}

{#-
    eoy_reset_retained_checks(): every retained table as the runner checks it unchanged after
    a pass: name (the table's label), relation, and column: the column holding the district
    (the districts table's key, or a `district:` the table declares), none for a table the
    runner checks whole (its count is the whole table's).
-#}
{% macro eoy_reset_retained_checks() %}
    {%- set found = [] -%}
    {%- for table in eoy_reset_declared_tables('retain') -%}
        {%- do found.append({
            'name': table.label, 'relation': table.relation,
            'column': eoy_reset_retained_column(table),
        }) -%}
    {%- endfor -%}
    {{ return(found) }}
{% endmacro %}

{#-
    eoy_reset_retained_column(table): the column of a retained table that holds its
    district, as the runner reads the declaration: the districts table's key, or the
    table's own `district:`; none when it declares none.
-#}
{% macro eoy_reset_retained_column(table) %}
    {%- if table.decl.get('role') == 'districts' -%}
        {{ return(eoy_reset_role_key()) }}
    {%- endif -%}
    {%- set column = table.decl.get('district') -%}
    {{ return(column if column is string else none) }}
{% endmacro %}
