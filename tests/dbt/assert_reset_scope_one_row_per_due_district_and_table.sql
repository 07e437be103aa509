-- reset_scope holds one row per due district and app table (13 tables), none for others.
{%- set n_tables = (reset_deleted_tables() + reset_retained_tables()) | length %}

select
    due.district_id,
    count(scope.table_name) as n_tables
from {{ ref('due_districts') }} as due
left join {{ ref('reset_scope') }} as scope
    on scope.district_id = due.district_id
group by due.district_id
having count(scope.table_name) <> {{ n_tables }}
    or count(distinct scope.table_name) <> {{ n_tables }}

union all

select scope.district_id, count(*) as n_tables
from {{ ref('reset_scope') }} as scope
where scope.district_id not in (select district_id from {{ ref('due_districts') }})
group by scope.district_id
