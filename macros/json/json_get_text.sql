{#-
  json_get_text(column, path): the value at `path` inside the JSON `column`, as text; null when
  the path is missing. `path` is a list of object keys, e.g. ['tables', 'students'].

  Keys are restricted to letters, digits, underscores and dots (a table's schema.name): they
  are inlined into the SQL.
  - postgres: the `#>>` operator (works on json and jsonb).
  - duckdb:   json_extract_string with a quoted JSON path ($."a"."b").
  - default:  json_extract_path_text(column, 'a', 'b') (Redshift, Snowflake and others).
-#}
{% macro json_get_text(column, path) -%}
    {%- if path is string -%}
        {%- set path = [path] -%}
    {%- endif -%}
    {%- if path | length == 0 -%}
        {{ exceptions.raise_compiler_error("json_get_text needs a path of at least one key, got an empty list") }}
    {%- endif -%}
    {%- for key in path -%}
        {%- if not modules.re.match('^[A-Za-z0-9_.]+$', key | string) -%}
            {{ exceptions.raise_compiler_error("json_get_text: key '" ~ key ~ "' may only hold letters, digits, underscores and dots") }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(adapter.dispatch('json_get_text')(column, path)) }}
{%- endmacro %}

{% macro default__json_get_text(column, path) -%}
    json_extract_path_text({{ column }}, {% for key in path %}'{{ key }}'{{ ", " if not loop.last }}{% endfor %})
{%- endmacro %}

{% macro postgres__json_get_text(column, path) -%}
    ({{ column }} #>> '{ {{- path | join(",") -}} }')
{%- endmacro %}

{% macro duckdb__json_get_text(column, path) -%}
    json_extract_string({{ column }}, '$.{% for key in path %}"{{ key }}"{{ "." if not loop.last }}{% endfor %}')
{%- endmacro %}
