-- What each district's reset notice says (notices --as-of): one row per district of var
-- school_year whose reset is not completed in the ledger. Dates, counts and organization
-- ids only: the notice's addresses and educator names are read from the demo's educators
-- when it is written (a vendor's project has none).
{%- set as_of = "cast('" ~ reset_as_of_date() ~ "' as date)" %}
{%- set school_year = reset_school_year() %}
{{ require_reset_policy(ref('reset_policy'), school_year) }}

with

windows as (

    select * from {{ ref('reset_date_windows') }}
    where school_year = {{ school_year }}

),

runs as (

    select district_id, status
    from {{ ref('stg_eoy_runner__reset_runs') }}
    where school_year = {{ school_year }}

),

districts as (

    select district_id, name from {{ ref('stg_app__districts') }}

),

-- student rows the reset would delete, counted per district and declared table through each
-- row's owners (never read row by row; a row two districts own counts for each)
{%- set tables = audit_student_tables() %}
counted as (
{%- for table in tables %}

    select
        owned.district_id,
        cast('{{ table.name }}' as {{ dbt.type_string() }}) as table_name,
        {{ loop.index }} as table_order,
        count(*) as row_count
    from ({{ eoy_reset_owned_rows(table.table) }}) as owned
    group by owned.district_id
{%- if not loop.last %}

    union all
{%- endif %}
{%- else %}

    select
        cast(null as {{ dbt.type_string() }}) as district_id,
        cast(null as {{ dbt.type_string() }}) as table_name,
        0 as table_order,
        cast(0 as {{ dbt.type_bigint() }}) as row_count
    where 1 = 0
{%- endfor %}

),

student_rows as (

    select
        district_id,
        sum(row_count) as row_count,
        {{ dbt.listagg(
            "table_name || '=' || cast(row_count as " ~ dbt.type_string() ~ ")",
            "';'",
            "order by table_order",
        ) }} as rows_by_table
    from counted
    group by district_id

),

inactive as (

    select district_id, count(*) as educators
    from {{ ref('inactive_educators') }}
    where school_year = {{ school_year }}
    group by district_id

),

administrators as (

    select * from {{ ref('int_district_administrators') }}

),

final as (

    select

        -- ids
        windows.district_id,
        districts.name as district_name,
        windows.school_year,
        -- the reset date and why
        windows.effective_reset_date,
        windows.date_source,
        windows.status as schedule_status,
        windows.issues,
        windows.default_reset_date,
        windows.earliest_reset_date,
        windows.requested_reset_date,
        windows.session_end_date,
        windows.rostering_start_date,
        -- when the date may still change: a new date from window_from to window_until
        -- (null: no end), asked for by change_deadline
        case
            when windows.accepted_from > {{ as_of }} then windows.accepted_from
            else cast({{ dbt.dateadd('day', 1, as_of) }} as date)
        end as window_from,
        windows.accepted_until as window_until,
        case
            when windows.status = 'blocked' then windows.accepted_until
            else cast({{ dbt.dateadd('day', -1, 'windows.effective_reset_date') }} as date)
        end as change_deadline,
        -- numbers
        cast(coalesce(student_rows.row_count, 0) as {{ dbt.type_bigint() }}) as student_rows,
        coalesce(student_rows.rows_by_table, '') as rows_by_table,
        coalesce(inactive.educators, 0) as inactive_educators,
        coalesce(administrators.administrators, 0) as administrators,
        coalesce(administrators.administrators_with_email, 0) as administrators_with_email,
        -- the ledger
        runs.status as run_status,
        {{ as_of }} as as_of_date

    from windows
    left join districts
        on districts.district_id = windows.district_id
    left join runs
        on runs.district_id = windows.district_id
    left join student_rows
        on student_rows.district_id = windows.district_id
    left join inactive
        on inactive.district_id = windows.district_id
    left join administrators
        on administrators.district_id = windows.district_id
    where coalesce(runs.status, '') <> 'completed'

)

select * from final
