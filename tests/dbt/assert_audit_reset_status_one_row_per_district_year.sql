-- audit_reset_status promises one row per district and school year.
select district_id, school_year, count(*) as row_count
from {{ ref('audit_reset_status') }}
group by district_id, school_year
having count(*) > 1
