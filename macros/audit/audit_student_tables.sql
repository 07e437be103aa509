{#-
  The seven student-data tables of SPEC §5 as the audit models see them (mirrors
  jobs/contract.py DELETED_TABLES):
    name        the app table
    has_product true when the table has a `product` column (per-product counts in the ledger)
    dated_by    the row's own timestamp, used to tell last year's rows from the new year's
                (null: the table has none and falls back to its student's created_at)
-#}
{% macro audit_student_tables() -%}
    {{ return([
        {'name': 'students', 'has_product': false, 'dated_by': 'created_at'},
        {'name': 'classrooms', 'has_product': true, 'dated_by': 'created_at'},
        {'name': 'classroom_enrollments', 'has_product': false, 'dated_by': none},
        {'name': 'assessments', 'has_product': true, 'dated_by': 'taken_at'},
        {'name': 'progress', 'has_product': true, 'dated_by': 'completed_at'},
        {'name': 'pathways', 'has_product': true, 'dated_by': 'assigned_at'},
        {'name': 'usage_sessions', 'has_product': true, 'dated_by': 'started_at'},
    ]) }}
{%- endmacro %}
