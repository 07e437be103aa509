-- Districts whose reset date (audited school year) has passed as of as_of_date but whose
-- student-data tables still hold rows dated before that reset date: overdue, failed or
-- broken resets. Counts per table; no student ids.
{%- set as_of = "cast('" ~ reset_as_of_date() ~ "' as date)" %}
with

schedule as (

    select * from {{ ref('reset_schedule') }}
    where school_year = {{ reset_school_year() }}
        and effective_reset_date <= {{ as_of }}

),

students as (

    select student_id, created_at from {{ ref('stg_app__students') }}

),

old_rows as (
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
        count(*) as old_rows,
        min({{ dated }}) as oldest_row_at
    from {{ ref('stg_app__' ~ table.name) }} as rows_
    inner join schedule
        on schedule.district_id = rows_.district_id
    {%- if table.name not in ('students', 'classrooms') %}
    left join students
        on students.student_id = rows_.student_id
    {%- endif %}
    where {{ dated }} < cast(schedule.effective_reset_date as {{ dbt.type_timestamp() }})
    group by rows_.district_id
{%- if not loop.last %}

    union all
{%- endif %}
{%- endfor %}

)

select
    old_rows.district_id,
    schedule.school_year,
    schedule.effective_reset_date,
    schedule.status as schedule_status,
    old_rows.table_name,
    old_rows.old_rows,
    old_rows.oldest_row_at
from old_rows
inner join schedule
    on schedule.district_id = old_rows.district_id
order by old_rows.district_id, old_rows.table_name
