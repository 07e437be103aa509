-- What a reset of each due district touches, as counts per app table (never rows):
-- 'delete' for the student-data tables of SPEC §5, 'retain' for the others.
{%- set deleted = reset_deleted_tables() %}
{%- set retained = reset_retained_tables() %}

with

due as (

    select district_id, school_year from {{ ref('due_districts') }}

),

-- one pass per table, grouped by district, limited to the due districts
counted as (

    {% for table_name in deleted + retained %}
    select
        district_id,
        cast('{{ table_name }}' as {{ dbt.type_string() }}) as table_name,
        count(*) as row_count
    from {{ ref('stg_app__' ~ table_name) }}
    where district_id in (select district_id from due)
    group by district_id
    {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

app_tables as (

    {% for table_name in deleted + retained %}
    select
        cast('{{ table_name }}' as {{ dbt.type_string() }}) as table_name,
        cast('{{ "delete" if table_name in deleted else "retain" }}' as {{ dbt.type_string() }})
            as action
    {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

final as (

    select
        due.district_id,
        due.school_year,
        app_tables.table_name,
        app_tables.action,
        cast(coalesce(counted.row_count, 0) as {{ dbt.type_bigint() }}) as row_count
    from due
    cross join app_tables
    left join counted
        on counted.district_id = due.district_id
        and counted.table_name = app_tables.table_name

)

select * from final
