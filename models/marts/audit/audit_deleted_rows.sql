{#- Rows deleted per district, school year, table and product: the sum over the completed
    `delete` events of each run's current cycle (a run may delete in parts, the main snapshot
    then deltas; a completed `restore` ends a cycle, and a run taken up again starts a new one;
    a restored run shows the cycle its restore undid).
    Per table the count is read from detail.tables.<table>, else detail.rows.<table>; the split
    per product from detail.products.<table>.<product>:
      {"tables": {"students": 120, ...}, "products": {"assessments": {"imagine_math": 80, ...}}}
    A table with a product column whose split is missing, or does not add up to its total,
    gets a row with product null for the rest. Counts of zero are left out. -#}
{%- set products = audit_products() -%}
with

events as (

    select * from {{ ref('stg_eoy_runner__reset_events') }}

),

runs as (

    select * from {{ ref('stg_eoy_runner__reset_runs') }}

),

deletes as (

    select district_id, school_year, event_id, "at", detail
    from events
    where step = 'delete' and status = 'completed'

),

restores as (

    select district_id, school_year, event_id
    from events
    where step = 'restore' and status = 'completed'

),

-- a delete belongs to the cycle opened by the last restore before it (0: the first cycle)
delete_cycles as (

    select
        deletes.event_id,
        coalesce(max(restores.event_id), 0) as cycle_id
    from deletes
    left join restores
        on restores.district_id = deletes.district_id
        and restores.school_year = deletes.school_year
        and restores.event_id < deletes.event_id
    group by deletes.event_id

),

latest_cycles as (

    select
        deletes.district_id,
        deletes.school_year,
        delete_cycles.cycle_id,
        row_number() over (
            partition by deletes.district_id, deletes.school_year
            order by deletes.event_id desc
        ) as recency
    from deletes
    inner join delete_cycles
        on delete_cycles.event_id = deletes.event_id

),

last_restores as (

    select district_id, school_year, max(event_id) as event_id
    from restores
    group by district_id, school_year

),

-- a restored run shows what its last cycle deleted; any other run its current cycle
chosen_cycles as (

    select
        latest_cycles.district_id,
        latest_cycles.school_year,
        case
            when runs.status = 'restored' then latest_cycles.cycle_id
            else coalesce(last_restores.event_id, 0)
        end as cycle_id
    from latest_cycles
    left join runs
        on runs.district_id = latest_cycles.district_id
        and runs.school_year = latest_cycles.school_year
    left join last_restores
        on last_restores.district_id = latest_cycles.district_id
        and last_restores.school_year = latest_cycles.school_year
    where latest_cycles.recency = 1

),

cycle_deletes as (

    select deletes.*
    from deletes
    inner join delete_cycles
        on delete_cycles.event_id = deletes.event_id
    inner join chosen_cycles
        on chosen_cycles.district_id = deletes.district_id
        and chosen_cycles.school_year = deletes.school_year
        and chosen_cycles.cycle_id = delete_cycles.cycle_id

),

counts as (

{%- for table in audit_student_tables() %}
{%- set total = 'coalesce(' ~ json_get_int('detail', ['tables', table.name]) ~ ', ' ~ json_get_int('detail', ['rows', table.name]) ~ ')' %}
{%- if table.has_product %}
{%- for product in products %}
{%- set split = json_get_int('detail', ['products', table.name, product]) %}

    select
        district_id,
        school_year,
        cast('{{ table.name }}' as {{ dbt.type_string() }}) as table_name,
        cast('{{ product }}' as {{ dbt.type_string() }}) as product,
        {{ split }} as rows_deleted,
        "at" as deleted_at
    from cycle_deletes
    where {{ split }} is not null

    union all
{%- endfor %}
{%- set known %}
{%- for product in products %}coalesce({{ json_get_int('detail', ['products', table.name, product]) }}, 0){{ " + " if not loop.last }}{% endfor %}
{%- endset %}

    select
        district_id,
        school_year,
        cast('{{ table.name }}' as {{ dbt.type_string() }}) as table_name,
        cast(null as {{ dbt.type_string() }}) as product,
        {{ total }} - ({{ known }}) as rows_deleted,
        "at" as deleted_at
    from cycle_deletes
    where {{ total }} is not null
        and (
            {{ json_get_text('detail', ['products', table.name]) }} is null
            or {{ total }} <> ({{ known }})
        )
{%- else %}

    select
        district_id,
        school_year,
        cast('{{ table.name }}' as {{ dbt.type_string() }}) as table_name,
        cast(null as {{ dbt.type_string() }}) as product,
        {{ total }} as rows_deleted,
        "at" as deleted_at
    from cycle_deletes
    where {{ total }} is not null
{%- endif %}
{%- if not loop.last %}

    union all
{%- endif %}
{%- else %}

    select
        cast(null as {{ dbt.type_string() }}) as district_id,
        cast(null as integer) as school_year,
        cast(null as {{ dbt.type_string() }}) as table_name,
        cast(null as {{ dbt.type_string() }}) as product,
        cast(null as {{ dbt.type_bigint() }}) as rows_deleted,
        cast(null as {{ dbt.type_timestamp() }}) as deleted_at
    where 1 = 0
{%- endfor %}

),

final as (

    select
        -- ids
        counts.district_id,
        counts.school_year,
        counts.table_name,
        counts.product,
        -- numbers
        cast(sum(counts.rows_deleted) as {{ dbt.type_bigint() }}) as rows_deleted,
        -- context
        max(counts.deleted_at) as deleted_at,
        max(runs.status) as run_status

    from counts
    left join runs
        on runs.district_id = counts.district_id
        and runs.school_year = counts.school_year
    group by counts.district_id, counts.school_year, counts.table_name, counts.product
    having sum(counts.rows_deleted) <> 0

)

select * from final
