-- Student rows per district, table and day of the row's own date (its student's creation
-- day when the table has none): counts only, so an analyst can tell last year's rows from
-- the new year's without reading a single student row.
with

students as (

    select student_id, created_at from {{ ref('stg_app__students') }}

),

rows_by_day as (
{%- for table in audit_student_tables() %}
{%- if table.dated_by is none %}
    {%- set dated = 'students.created_at' %}
{%- elif table.name in ('students', 'classrooms') %}
    {%- set dated = 'rows_.' ~ table.dated_by %}
{%- else %}
    {%- set dated = 'coalesce(rows_.' ~ table.dated_by ~ ', students.created_at)' %}
{%- endif %}

    select
        rows_.district_id,
        '{{ table.name }}' as table_name,
        cast({{ dated }} as date) as row_date,
        count(*) as row_count
    from {{ ref('stg_app__' ~ table.name) }} as rows_
    {%- if table.name not in ('students', 'classrooms') %}
    left join students
        on students.student_id = rows_.student_id
    {%- endif %}
    group by rows_.district_id, cast({{ dated }} as date)
{%- if not loop.last %}

    union all
{%- endif %}
{%- endfor %}

)

select * from rows_by_day
