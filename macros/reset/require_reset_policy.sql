{#
    require_reset_policy(policy_relation, school_year): stop the build when the seed
    reset_policy has no row for the school year.

    Arguments: the seed's relation (pass ref('reset_policy') from the model so dbt sees
    the dependency at parse time) and the school year. Runs a query at execution time
    only; at parse time, and in unit tests (where the seed is a fixture CTE), it does
    nothing. Plain SQL, every adapter.
#}
{% macro require_reset_policy(policy_relation, school_year) %}
    {%- if execute and model.resource_type != 'unit_test' -%}
        {%- set found = run_query(
            "select count(*) from " ~ policy_relation ~ " where school_year = " ~ (school_year | int)
        ) -%}
        {%- if (found.columns[0].values()[0] | int) == 0 -%}
            {{ exceptions.raise_compiler_error(
                "no reset policy for school year " ~ school_year
                ~ ": add a row to seeds/reset_policy.csv"
            ) }}
        {%- endif -%}
    {%- endif -%}
{% endmacro %}
