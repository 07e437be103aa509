{#
    reset_named_districts(): var `named_districts` (the districts an operator named with
    `run --district`) as a list of quoted SQL string literals; [] when none. Accepts a list
    or a comma-separated string. Pure Jinja, every adapter.
#}
{% macro reset_named_districts() %}
    {%- set raw = var('named_districts', none) -%}
    {%- if raw is none or raw == '' -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set names = raw.split(',') if raw is string else raw -%}
    {%- set literals = [] -%}
    {%- for name in names if (name | string | trim) != '' -%}
        {%- do literals.append("'" ~ (name | string | trim | replace("'", "''")) ~ "'") -%}
    {%- endfor -%}
    {{ return(literals) }}
{% endmacro %}
