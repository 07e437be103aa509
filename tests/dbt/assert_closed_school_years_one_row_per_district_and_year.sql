-- closed_school_years has one row per district and school year.
select district_id, school_year, count(*) as n
from {{ ref('closed_school_years') }}
group by district_id, school_year
having count(*) > 1
