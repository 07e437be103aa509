-- What a reset of each due district touches, as counts per declared table (never rows):
-- 'delete' for the tables the scope deletes, counted through each row's owners (a row
-- several districts own counts for each), 'retain' for the others that carry the
-- district's id in a column of their own.
{%- set declared = eoy_reset_declared_tables() %}
{%- set kept = {} %}
{%- for table in eoy_reset_retained_tables(declared, counted=true) if table.counted %}
    {%- do kept.update({table.qualified: table.counted}) %}
{%- endfor %}

with

due as (

    select district_id, school_year from {{ ref('due_districts') }}

),

-- one pass per table, grouped by district, limited to the due districts
counted as (

    {%- set parts = [] %}
    {%- for table in declared %}
        {%- if table.decl.get('action') == 'delete' %}
            {%- set owned = eoy_reset_owned_rows(table) %}
        {%- elif table.qualified in kept %}
            {%- set column = kept[table.qualified] %}
            {%- set owned = 'select cast(' ~ column ~ ' as ' ~ dbt.type_string() ~ ') as district_id from ' ~ table.relation %}
        {%- else %}
            {%- set owned = none %}
        {%- endif %}
        {%- if owned is not none %}
            {%- do parts.append((table.label, owned)) %}
        {%- endif %}
    {%- endfor %}
    {%- for name, owned in parts %}
    select
        owned_rows.district_id,
        cast('{{ name }}' as {{ dbt.type_string() }}) as table_name,
        count(*) as row_count
    from ({{ owned }}) as owned_rows
    where owned_rows.district_id in (select district_id from due)
    group by owned_rows.district_id
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}
    {%- if not parts %}
    select
        cast(null as {{ dbt.type_string() }}) as district_id,
        cast(null as {{ dbt.type_string() }}) as table_name,
        cast(0 as {{ dbt.type_bigint() }}) as row_count
    where 1 = 0
    {%- endif %}

),

declared_tables as (

    {%- for table in declared %}
    select
        cast('{{ table.label }}' as {{ dbt.type_string() }}) as table_name,
        {%- set action = "delete" if table.decl.get("action") == "delete" else "retain" %}
        cast('{{ action }}' as {{ dbt.type_string() }}) as action
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}
    {%- if not declared %}
    select
        cast(null as {{ dbt.type_string() }}) as table_name,
        cast(null as {{ dbt.type_string() }}) as action
    where 1 = 0
    {%- endif %}

),

final as (

    select
        due.district_id,
        due.school_year,
        declared_tables.table_name,
        declared_tables.action,
        cast(coalesce(counted.row_count, 0) as {{ dbt.type_bigint() }}) as row_count
    from due
    cross join declared_tables
    left join counted
        on counted.district_id = due.district_id
        and counted.table_name = declared_tables.table_name

)

select * from final
