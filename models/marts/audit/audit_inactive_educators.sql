{#- The list of inactive educators for the audited school year: educators who never
    logged in, or not for more than var inactive_educator_days before their district's reset
    date. Ids only: no names or emails. -#}
{%- set school_year = reset_school_year() %}
with

inactive as (

    select * from {{ ref('inactive_educators') }}

),

districts as (

    select * from {{ ref('stg_app__districts') }}

),

final as (

    select
        -- ids
        inactive.educator_id,
        inactive.district_id,
        districts.name as district_name,
        inactive.school_id,
        inactive.school_year,
        -- attributes
        inactive.role,
        inactive.reason,
        -- dates and numbers
        inactive.last_login_at,
        inactive.effective_reset_date,
        inactive.days_inactive

    from inactive
    left join districts
        on districts.district_id = inactive.district_id
    where inactive.school_year = {{ school_year }}

)

select * from final
