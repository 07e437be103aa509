{#
    reset_as_of_date(): the day the plan is for, as an ISO string 'YYYY-MM-DD'.

    Reads var `as_of_date` (`dbt build --vars`), else the environment variable
    EOY_AS_OF_DATE (how `eoy-reset` passes --as-of: a changed variable does not make dbt parse
    the project again, a changed var does); neither means today. A value that is not a date
    stops the build with a sentence saying so. Same on every adapter (pure Jinja).
#}
{% macro reset_as_of_date() %}
    {%- set raw = var('as_of_date', none) -%}
    {%- if raw is none or (raw | string | trim) == '' -%}
        {%- set raw = env_var('EOY_AS_OF_DATE', '') -%}
    {%- endif -%}
    {%- if (raw | string | trim) == '' -%}
        {{ return(modules.datetime.date.today().isoformat()) }}
    {%- endif -%}
    {%- set text = raw | string | trim -%}
    {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', text) -%}
        {{ exceptions.raise_compiler_error("var as_of_date " ~ text ~ " is not a date: use YYYY-MM-DD") }}
    {%- endif -%}
    {{ return(text) }}
{% endmacro %}
