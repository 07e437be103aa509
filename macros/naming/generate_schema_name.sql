{#-
  Schema names: `eoy` for everything, `eoy_<custom>` for folders with a custom schema
  (marts/audit builds into `eoy_audit`). This is dbt's default behaviour, written out so
  the schema names eoy and eoy_audit do not depend on it.
-#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ target.schema }}_{{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
