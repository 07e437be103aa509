-- Districts whose reset date (audited school year) has passed as of as_of_date but whose
-- student-data tables still hold rows dated before that reset date: overdue, failed or
-- broken resets. Counts per table; no student ids. Reads schema eoy_audit only.
{%- set as_of = "cast('" ~ reset_as_of_date() ~ "' as date)" %}
with

schedule as (

    select district_id, school_year, effective_reset_date, status
    from {{ ref('audit_reset_status') }}
    where school_year = {{ reset_school_year() }}
        and effective_reset_date <= {{ as_of }}

),

old_rows as (

    select
        rows_by_day.district_id,
        rows_by_day.table_name,
        sum(rows_by_day.row_count) as old_rows,
        min(rows_by_day.row_date) as oldest_row_on
    from {{ ref('audit_student_rows_by_day') }} as rows_by_day
    inner join schedule
        on schedule.district_id = rows_by_day.district_id
    where rows_by_day.row_date < schedule.effective_reset_date
    group by rows_by_day.district_id, rows_by_day.table_name

)

select
    old_rows.district_id,
    schedule.school_year,
    schedule.effective_reset_date,
    schedule.status as reset_status,
    old_rows.table_name,
    old_rows.old_rows,
    old_rows.oldest_row_on
from old_rows
inner join schedule
    on schedule.district_id = old_rows.district_id
order by old_rows.district_id, old_rows.table_name
