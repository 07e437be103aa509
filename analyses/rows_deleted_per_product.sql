-- Rows deleted per school year, product and table, over all districts (product null: a
-- table without a product column, or counts the ledger did not split).
select
    school_year,
    coalesce(product, '(none)') as product,
    table_name,
    count(distinct district_id) as districts,
    sum(rows_deleted) as rows_deleted
from {{ ref('audit_deleted_rows') }}
where run_status = 'completed'
group by school_year, coalesce(product, '(none)'), table_name
order by school_year, product, table_name
