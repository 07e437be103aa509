{#-
  json_get_int(column, path): the integer at `path` inside the JSON `column` (a bigint), null
  when the path is missing. Same arguments as json_get_text, which does the per-adapter work.
-#}
{% macro json_get_int(column, path) -%}
    cast({{ json_get_text(column, path) }} as {{ dbt.type_bigint() }})
{%- endmacro %}
