-- Per completed reset: days from the reset date (and from the run's finish) to the day the
-- district's import syncs resumed; null resumed_at means rostering is not complete yet.
select
    district_id,
    district_name,
    school_year,
    effective_reset_date,
    run_finished_at,
    syncs_paused_at,
    syncs_resumed_at,
    {{ dbt.datediff('effective_reset_date', 'syncs_resumed_at', 'day') }}
        as days_from_reset_date_to_resume,
    {{ dbt.datediff('run_finished_at', 'syncs_resumed_at', 'hour') }}
        as hours_from_run_finished_to_resume
from {{ ref('audit_reset_status') }}
where status = 'completed'
order by days_from_reset_date_to_resume desc nulls first, district_id asc
