{#
    reset_parameter(value, env): one of the reset's parameters as trimmed text: the var's value
    the caller read, else the environment variable `env` when the var is unset or blank; ''
    when neither is given. The caller reads the var itself, by its name: that is how
    `eoy-reset query` finds the vars an analysis reads.

    The variable is read only when dbt executes, never while it parses: dbt parses again
    every file that read an environment variable whose value changed since its last parse,
    and these change from one command to the next (a plan of another day), while they never
    change what a model refers to or how it is configured.
#}
{% macro reset_parameter(value, env) %}
    {%- set raw = '' if value is none else value -%}
    {%- if (raw | string | trim) == '' and execute -%}
        {%- set raw = env_var(env, '') -%}
    {%- endif -%}
    {{ return(raw | string | trim) }}
{% endmacro %}
