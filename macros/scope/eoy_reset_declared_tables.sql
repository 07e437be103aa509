{#-
    eoy_reset_declared_tables(): the tables the root project's in-scope sources declare
    (source meta eoy_reset: {scope: true}; each table's meta.eoy_reset), in the order the
    YAML gives them, read from graph.sources as packages such as elementary read meta.
    Each: name, schema, qualified ('schema.name'), label (the table's name in plans, the
    ledger and the audit marts, as the runner labels it: its name, or its qualified name
    when two declared schemas hold a table of that name), relation (made from the source
    node, so no parse-time dependency: graph is empty until execution, when this returns
    them) and decl (the table's declaration). A package's own sources (the demo's) never
    count.
    action: 'delete' for the tables the reset deletes, 'retain' for the others (the
    districts table among them), none for all.
-#}
{% macro eoy_reset_declared_tables(action=none) %}
    {%- set every = [] -%}
    {%- if execute -%}
        {%- for node in graph.sources.values() -%}
            {%- set source_meta = (node.get('source_meta') or {}).get('eoy_reset') or {} -%}
            {%- if node.package_name == project_name and source_meta is mapping and source_meta.get('scope') -%}
                {%- set config_meta = (node.get('config') or {}).get('meta') or {} -%}
                {%- set decl = (node.get('meta') or {}).get('eoy_reset') or config_meta.get('eoy_reset') or {} -%}
                {%- set name = node.identifier or node.name -%}
                {%- do every.append({
                    'name': name,
                    'schema': node.schema,
                    'qualified': node.schema ~ '.' ~ name,
                    'relation': api.Relation.create(
                        database=node.database, schema=node.schema, identifier=name
                    ),
                    'decl': decl,
                }) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {#- labels over every declared table, whatever the filter: the runner's are -#}
    {%- set names = every | map(attribute='name') | list -%}
    {%- set found = [] -%}
    {%- for table in every -%}
        {%- do table.update({
            'label': table.name if names.count(table.name) == 1 else table.qualified
        }) -%}
        {%- if action is none or (action == 'delete') == (table.decl.get('action') == 'delete') -%}
            {%- do found.append(table) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(found) }}
{% endmacro %}

{#-
    eoy_reset_columns(tables): the columns of each declared table, read from the warehouse's
    catalog in one query (a catalog query per table, for each table of each model, took
    seconds of a build on DuckDB): a mapping of each table's `qualified` name to its columns
    in order, each {name, type} as the catalog has them. Empty while dbt parses.
-#}
{% macro eoy_reset_columns(tables) %}
    {%- set found = {} -%}
    {%- if not execute or not tables -%}{{ return(found) }}{%- endif -%}
    {%- set wanted = [] -%}
    {%- for table in tables -%}
        {%- do found.update({table.qualified: []}) -%}
        {%- set quoted = [] -%}
        {%- for part in [table.relation.schema, table.relation.identifier] -%}
            {%- do quoted.append("'" ~ (part | lower | replace("'", "''")) ~ "'") -%}
        {%- endfor -%}
        {%- do wanted.append('(' ~ quoted | join(', ') ~ ')') -%}
    {%- endfor -%}
    {%- set rows = run_query(
        'select lower(table_catalog), lower(table_schema), lower(table_name), column_name, data_type'
        ~ ' from information_schema.columns'
        ~ ' where (lower(table_schema), lower(table_name)) in (' ~ wanted | join(', ') ~ ')'
        ~ ' order by 1, 2, 3, ordinal_position'
    ) -%}
    {%- for table in tables -%}
        {%- set database = (table.relation.database or '') | lower -%}
        {%- set here = [table.relation.schema | lower, table.relation.identifier | lower] -%}
        {%- for row in rows.rows if [row[1], row[2]] == here and (not database or row[0] == database) -%}
            {%- do found[table.qualified].append({'name': row[3], 'type': row[4]}) -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(found) }}
{% endmacro %}
