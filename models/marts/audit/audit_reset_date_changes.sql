-- Every change a CSM made to a district's reset-date request (request-date), oldest first:
-- who, when, each date before and after, and the reset date the rules gave it then.
with

changes as (

    select * from {{ ref('stg_eoy_runner__reset_request_changes') }}

),

districts as (

    select * from {{ ref('stg_app__districts') }}

),

final as (

    select
        -- ids
        changes.change_id,
        changes.district_id,
        districts.name as district_name,
        changes.school_year,
        -- who and when
        changes.changed_by,
        changes.changed_at,
        changes.anyway as is_recorded_anyway,
        -- before and after
        changes.old_requested_reset_date,
        changes.new_requested_reset_date,
        changes.old_school_year_end_date,
        changes.new_school_year_end_date,
        changes.old_summer_session_end_date,
        changes.new_summer_session_end_date,
        changes.old_rostering_start_date,
        changes.new_rostering_start_date,
        -- the outcome then
        changes.effective_reset_date,
        changes.date_source,
        changes.schedule_status,
        changes.issues
    from changes
    left join districts
        on districts.district_id = changes.district_id

)

select * from final
