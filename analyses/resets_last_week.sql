-- Resets that finished in the 7 days up to as_of_date (var, default today): who, when, how
-- many rows, and where the snapshot is.
{%- set as_of = "cast('" ~ reset_as_of_date() ~ "' as date)" %}
select
    district_id,
    district_name,
    school_year,
    effective_reset_date,
    run_finished_at,
    rows_deleted,
    snapshot_path,
    manifest_sha256
from {{ ref('audit_reset_status') }}
where status = 'completed'
    and run_finished_at >= {{ dbt.dateadd('day', -7, as_of) }}
    and run_finished_at < {{ dbt.dateadd('day', 1, as_of) }}
order by run_finished_at, district_id
