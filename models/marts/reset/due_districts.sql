-- Districts to reset as of var as_of_date for var school_year: due, and their year still open.
{%- set as_of = reset_as_of_date() %}
{%- set school_year = reset_school_year() %}
{%- set named = reset_named_districts() %}
{%- set policy = ref('reset_policy') %}
{{ require_reset_policy(policy, school_year) }}

with

schedule as (

    select * from {{ ref('reset_schedule') }}
    where school_year = {{ school_year }}

),

closed as (

    select district_id
    from {{ ref('closed_school_years') }}
    where school_year = {{ school_year }}

),

runs as (

    select
        district_id,
        status,
        effective_reset_date
    from {{ ref('stg_eoy_runner__reset_runs') }}
    where school_year = {{ school_year }}

),

final as (

    select
        schedule.district_id,
        schedule.school_year,
        schedule.effective_reset_date,
        schedule.date_source,
        schedule.status,
        schedule.issues,
        cast('{{ as_of }}' as date) as as_of_date
    from schedule
    where schedule.status = 'scheduled'
        and schedule.effective_reset_date <= cast('{{ as_of }}' as date)
        -- the new year's rostering closed the year: the live rows are next year's
        and schedule.district_id not in (select district_id from closed)
        -- done already, or restored and held until its reset date changes (unless named)
        and not exists (
            select 1
            from runs
            where runs.district_id = schedule.district_id
                and (
                    runs.status = 'completed'
                    or (
                        runs.status = 'restored'
                        and runs.effective_reset_date = schedule.effective_reset_date
                        {%- if named %}
                        and runs.district_id not in ({{ named | join(', ') }})
                        {%- endif %}
                    )
                )
        )

)

select * from final
