-- Student rows per district, table and day of the row's own date (else its root row's, the
-- demo's student's creation day; null when neither has one): counts only, so an analyst can
-- tell last year's rows from the new year's without reading a single student row. The
-- tables are those the scope declares deleted; a row owned by two districts counts for each.
{%- set tables = audit_student_tables() %}
with

rows_by_day as (
{%- for table in tables %}

    select
        rows_.district_id,
        cast('{{ table.name }}' as {{ dbt.type_string() }}) as table_name,
        cast(rows_.row_date as date) as row_date,
        count(*) as row_count
    from ({{ audit_dated_rows(table) }}) as rows_
    group by rows_.district_id, cast(rows_.row_date as date)
{%- if not loop.last %}

    union all
{%- endif %}
{%- else %}

    select
        cast(null as {{ dbt.type_string() }}) as district_id,
        cast(null as {{ dbt.type_string() }}) as table_name,
        cast(null as date) as row_date,
        cast(0 as {{ dbt.type_bigint() }}) as row_count
    where 1 = 0
{%- endfor %}

)

select * from rows_by_day
