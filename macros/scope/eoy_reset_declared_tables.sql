{#-
    eoy_reset_declared_tables(): the tables the root project's in-scope sources declare
    (source meta eoy_reset: {scope: true}; each table's meta.eoy_reset), in the order the
    YAML gives them, read from graph.sources as packages such as elementary read meta.
    Each: name, schema, qualified ('schema.name'), relation (made from the source node, so
    no parse-time dependency: graph is empty until execution, when this returns them) and
    decl (the table's declaration). A package's own sources (the demo's) never count.
-#}
{% macro eoy_reset_declared_tables() %}
    {%- set found = [] -%}
    {%- if execute -%}
        {%- for node in graph.sources.values() -%}
            {%- set source_meta = (node.get('source_meta') or {}).get('eoy_reset') or {} -%}
            {%- if node.package_name == project_name and source_meta is mapping and source_meta.get('scope') -%}
                {%- set config_meta = (node.get('config') or {}).get('meta') or {} -%}
                {%- set decl = (node.get('meta') or {}).get('eoy_reset') or config_meta.get('eoy_reset') or {} -%}
                {%- set name = node.identifier or node.name -%}
                {%- do found.append({
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
    {{ return(found) }}
{% endmacro %}
