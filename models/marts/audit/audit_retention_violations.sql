{#- What the reset promises after a district's latest completed reset, checked against the
    declared scope's tables now.
    Empty when all is well; tests/dbt/assert_audit_no_retention_violations.sql fails otherwise.
    - student_rows_present: rows of a student-data table dated before the run started (last
      year's data the reset should have removed; new-year rostering after it is fine), per
      table the scope declares deleted. A row without a date of its own is dated by its root
      row's (the demo's student's created_at, audit_student_tables); undated rows count.
    - retained_rows_missing: fewer rows in a retained table than the `check_retention` event
      recorded right after the delete: {"retained": {"educators": [14, <fingerprint>], ...}}
      (a bare count, {"educators": 14}, is read too), counted as the runner counts them: the
      district's rows of a table with a district column (the districts table's key, or a
      declared `district:`), the whole table's rows otherwise. -#}
with

runs as (

    select * from {{ ref('stg_eoy_runner__reset_runs') }}

),

events as (

    select * from {{ ref('stg_eoy_runner__reset_events') }}

),

completed_runs as (

    select
        district_id,
        school_year,
        coalesce(
            started_at, finished_at, cast(effective_reset_date as {{ dbt.type_timestamp() }})
        ) as reset_at,
        row_number() over (partition by district_id order by school_year desc) as recency
    from runs
    where status = 'completed'

),

latest_completed as (

    select * from completed_runs where recency = 1

),

retention_checks as (

    select
        events.district_id,
        events.school_year,
        events.detail,
        row_number() over (
            partition by events.district_id, events.school_year
            order by events."at" desc, events.event_id desc
        ) as recency
    from events
    inner join latest_completed
        on latest_completed.district_id = events.district_id
        and latest_completed.school_year = events.school_year
    where events.step = 'check_retention' and events.status = 'completed'

),

{%- set tables = audit_student_tables() %}
{% for table in tables %}
present_{{ loop.index }} as (

    select
        rows_.district_id,
        count(*) as actual_rows
    from ({{ audit_dated_rows(table) }}) as rows_
    inner join latest_completed
        on latest_completed.district_id = rows_.district_id
    where rows_.row_date is null
        or rows_.row_date < latest_completed.reset_at
    group by rows_.district_id

),

{% endfor %}
{%- set kept_tables = eoy_reset_retained_tables() %}
{#- numbered, as present_N: two declared schemas may hold a retained table of one name #}
{%- for kept in kept_tables %}
kept_{{ loop.index }} as (

    {%- if kept.column %}
    select
        cast({{ kept.column }} as {{ dbt.type_string() }}) as district_id,
        count(*) as actual_rows
    from {{ kept.relation }}
    group by {{ kept.column }}
    {%- else %}
    {#- checked whole: one row, the same count for every district #}
    select count(*) as actual_rows
    from {{ kept.relation }}
    {%- endif %}

),

{% endfor -%}
violations as (

{%- for table in tables %}

    select
        latest_completed.district_id,
        latest_completed.school_year,
        cast('{{ table.name }}' as {{ dbt.type_string() }}) as table_name,
        cast('student_rows_present' as {{ dbt.type_string() }}) as violation,
        cast(0 as {{ dbt.type_bigint() }}) as expected_rows,
        cast(present_{{ loop.index }}.actual_rows as {{ dbt.type_bigint() }}) as actual_rows,
        latest_completed.reset_at
    from latest_completed
    inner join present_{{ loop.index }}
        on present_{{ loop.index }}.district_id = latest_completed.district_id

    union all
{%- endfor %}
{%- for kept in kept_tables %}
{%- set table = kept.name %}
{#- the runner records [rows, fingerprint] per table; a bare row count is read as well #}
{%- set recorded_text = json_get_text('retention_checks.detail', ['retained', table]) %}
{%- set recorded_list = "replace(replace(" ~ recorded_text ~ ", '[', ''), ']', '')" %}
{%- set recorded_rows = dbt.split_part(recorded_list, "','", 1) %}
{%- set recorded = 'cast(trim(' ~ recorded_rows ~ ') as ' ~ dbt.type_bigint() ~ ')' %}

    select
        latest_completed.district_id,
        latest_completed.school_year,
        cast('{{ table }}' as {{ dbt.type_string() }}) as table_name,
        cast('retained_rows_missing' as {{ dbt.type_string() }}) as violation,
        {{ recorded }} as expected_rows,
        cast(
            coalesce(kept_{{ loop.index }}.actual_rows, 0) as {{ dbt.type_bigint() }}
        ) as actual_rows,
        latest_completed.reset_at
    from latest_completed
    inner join retention_checks
        on retention_checks.district_id = latest_completed.district_id
        and retention_checks.school_year = latest_completed.school_year
        and retention_checks.recency = 1
    {%- if kept.column %}
    left join kept_{{ loop.index }}
        on kept_{{ loop.index }}.district_id = latest_completed.district_id
    {%- else %}
    cross join kept_{{ loop.index }}
    {%- endif %}
    where coalesce(kept_{{ loop.index }}.actual_rows, 0) < {{ recorded }}
{%- if not loop.last %}

    union all
{%- endif %}
{%- endfor %}
{%- if not kept_tables %}

    {#- no retained table to count (nor, maybe, a deleted one): an empty part #}
    select
        cast(null as {{ dbt.type_string() }}) as district_id,
        cast(null as integer) as school_year,
        cast(null as {{ dbt.type_string() }}) as table_name,
        cast(null as {{ dbt.type_string() }}) as violation,
        cast(null as {{ dbt.type_bigint() }}) as expected_rows,
        cast(null as {{ dbt.type_bigint() }}) as actual_rows,
        cast(null as {{ dbt.type_timestamp() }}) as reset_at
    from retention_checks
    where 1 = 0
{%- endif %}

),

final as (

    select
        -- ids
        district_id,
        school_year,
        table_name,
        violation,
        -- numbers
        expected_rows,
        actual_rows,
        case
            when violation = 'student_rows_present' then actual_rows
            else expected_rows - actual_rows
        end as rows_in_violation,
        -- when the reset ran: rows dated before it should be gone
        reset_at

    from violations

)

select * from final
