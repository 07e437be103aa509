{#
    reset_deleted_tables() / reset_retained_tables(): the app tables that carry
    district_id, by what the reset does to them (SPEC §5). Names of staging models are
    'stg_app__' ~ table. Pure Jinja, every adapter.
#}
{% macro reset_deleted_tables() %}
    {{ return([
        'students', 'classrooms', 'classroom_enrollments', 'assessments',
        'progress', 'pathways', 'usage_sessions'
    ]) }}
{% endmacro %}

{% macro reset_retained_tables() %}
    {{ return([
        'districts', 'schools', 'educators', 'import_syncs',
        'district_reset_requests', 'rostering_runs'
    ]) }}
{% endmacro %}
