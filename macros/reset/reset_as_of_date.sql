{#
    reset_as_of_date(): the day the plan is for, as an ISO string 'YYYY-MM-DD'.

    Reads var `as_of_date` (`dbt build --vars`), else the environment variable
    EOY_AS_OF_DATE (how `eoy-reset` passes --as-of: a changed variable does not make dbt parse
    the project again, a changed var does); neither means today. A value that is not a date
    stops the build with a sentence saying so. Same on every adapter (pure Jinja).
#}
{% macro reset_as_of_date() %}
    {%- set text = reset_parameter(var('as_of_date', none), 'EOY_AS_OF_DATE') -%}
    {%- if text == '' -%}
        {{ return(modules.datetime.date.today().isoformat()) }}
    {%- endif -%}
    {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', text) -%}
        {{ exceptions.raise_compiler_error("var as_of_date " ~ text ~ " is not a date: use YYYY-MM-DD") }}
    {%- endif -%}
    {{ return(text) }}
{% endmacro %}
