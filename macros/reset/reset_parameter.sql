{#
    reset_parameter(value, env): one of the reset's parameters as trimmed text: the var's value
    the caller read, else the environment variable `env` when the var is unset or blank; ''
    when neither is given. The caller reads the var itself, by its name: that is how
    `eoy-reset query` finds the vars an analysis reads.
#}
{% macro reset_parameter(value, env) %}
    {%- set raw = value -%}
    {%- if raw is none or (raw | string | trim) == '' -%}
        {%- set raw = env_var(env, '') -%}
    {%- endif -%}
    {{ return(raw | string | trim) }}
{% endmacro %}
