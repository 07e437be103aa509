{#
    reset_school_year(): the school year to plan, as an integer.

    Reads var `school_year`, else the environment variable EOY_SCHOOL_YEAR (set by
    `eoy-reset`); neither means the calendar year of reset_as_of_date() (school years are
    named by the year they end in). Pure Jinja, every adapter.
#}
{% macro reset_school_year() %}
    {%- set text = reset_parameter(var('school_year', none), 'EOY_SCHOOL_YEAR') -%}
    {%- if text == '' -%}
        {{ return(reset_as_of_date()[:4] | int) }}
    {%- endif -%}
    {%- if not modules.re.match('^[0-9]{4}$', text) -%}
        {{ exceptions.raise_compiler_error("var school_year " ~ text ~ " is not a year: use e.g. 2023 for 2022-23") }}
    {%- endif -%}
    {{ return(text | int) }}
{% endmacro %}
