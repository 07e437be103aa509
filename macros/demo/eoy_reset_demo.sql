{#-
    eoy_reset_demo(): true when the root dbt project is eoy-reset's own (the demo, whose
    warehouse schema `app` init creates); false in a vendor's project that installs
    eoy-reset as a package, where the demo's sources, their staging models and their tests
    are disabled and what only the demo has (its educators) is empty.
-#}
{% macro eoy_reset_demo() %}
    {{ return(project_name == 'eoy_reset') }}
{% endmacro %}
