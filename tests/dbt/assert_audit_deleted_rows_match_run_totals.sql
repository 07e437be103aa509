-- The per-table counts of a completed run's delete events add up to its rows_deleted.
with

per_run as (

    select district_id, school_year, sum(rows_deleted) as rows_deleted
    from {{ ref('audit_deleted_rows') }}
    group by district_id, school_year

),

runs as (

    select * from {{ ref('stg_eoy_runner__reset_runs') }}

)

select
    per_run.district_id,
    per_run.school_year,
    per_run.rows_deleted as rows_in_delete_event,
    runs.rows_deleted as rows_in_run
from per_run
inner join runs
    on runs.district_id = per_run.district_id
    and runs.school_year = per_run.school_year
where runs.status = 'completed'
    and runs.rows_deleted is not null
    and runs.rows_deleted <> per_run.rows_deleted
