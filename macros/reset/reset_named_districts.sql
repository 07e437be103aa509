{#
    reset_named_districts(): the districts an operator named with `run --district`, as a list
    of quoted SQL string literals; [] when none. Reads var `named_districts` (a list or a
    comma-separated string), else the environment variable EOY_NAMED_DISTRICTS (a JSON list,
    set by `eoy-reset`), and that only when dbt executes (see reset_parameter). Pure Jinja,
    every adapter.
#}
{% macro reset_named_districts() %}
    {%- set raw = var('named_districts', none) -%}
    {%- if raw is none or raw == '' or raw == [] -%}
        {%- set raw = fromjson((env_var('EOY_NAMED_DISTRICTS', '') if execute else '') or '[]') -%}
    {%- endif -%}
    {%- set names = raw.split(',') if raw is string else raw -%}
    {%- set literals = [] -%}
    {%- for name in names if (name | string | trim) != '' -%}
        {%- do literals.append("'" ~ (name | string | trim | replace("'", "''")) ~ "'") -%}
    {%- endfor -%}
    {{ return(literals) }}
{% endmacro %}
