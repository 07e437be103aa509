-- The administrators of each district, counted: all of them, and those with an email a notice
-- can go to. Counts only: never an address.
with

educators as (

    select * from {{ ref('stg_app__educators') }}

),

final as (

    select
        district_id,
        count(*) as administrators,
        sum(case when coalesce(trim(email), '') <> '' then 1 else 0 end)
            as administrators_with_email
    from educators
    where role = 'administrator'
    group by district_id

)

select * from final
