{#
    reset_deleted_tables() / reset_retained_tables(): the names of the tables the root
    project's scope declares, by what the reset does to them (action delete; retain, the
    districts table among them), in the order of its sources YAML. Read from graph.sources
    (eoy_reset_declared_tables): empty at parse time, so no ref may depend on them.
#}
{% macro reset_deleted_tables() %}
    {{ return(eoy_reset_declared_tables('delete') | map(attribute='name') | list) }}
{% endmacro %}

{% macro reset_retained_tables() %}
    {{ return(eoy_reset_declared_tables('retain') | map(attribute='name') | list) }}
{% endmacro %}
