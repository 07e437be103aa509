-- Reset notices of the audited school year, one row per district: notified (and whether its
-- date changed after the notice), unreachable (no administrator with an email), or not yet
-- notified. Counts, dates and ids only: never an address.
{%- set school_year = reset_school_year() %}

with

schedule as (

    select * from {{ ref('reset_schedule') }}
    where school_year = {{ school_year }}

),

districts as (

    select * from {{ ref('stg_app__districts') }}

),

administrators as (

    select * from {{ ref('int_district_administrators') }}

),

sent as (

    select * from {{ ref('stg_eoy_runner__notices_sent') }}
    where school_year = {{ school_year }}

),

latest_sent as (

    select
        sent.*,
        row_number() over (
            partition by sent.district_id order by sent.sent_at desc, sent.message_id desc
        ) as recency,
        count(*) over (partition by sent.district_id) as notices_sent
    from sent

),

last_notice as (

    select * from latest_sent where recency = 1

),

changes as (

    select * from {{ ref('stg_eoy_runner__reset_request_changes') }}
    where school_year = {{ school_year }}

),

changes_after as (

    select
        last_notice.district_id,
        count(changes.change_id) as request_changes_after_notice
    from last_notice
    left join changes
        on changes.district_id = last_notice.district_id
        and changes.changed_at > last_notice.sent_at
    group by last_notice.district_id

),

final as (

    select

        -- ids
        schedule.district_id,
        districts.name as district_name,
        schedule.school_year,
        -- the reset date now
        schedule.effective_reset_date,
        schedule.date_source,
        schedule.status as schedule_status,
        -- the notice
        cast(
            case
                when last_notice.district_id is not null then 'notified'
                when coalesce(administrators.administrators_with_email, 0) = 0
                    then 'unreachable'
                else 'not_notified'
            end as {{ dbt.type_string() }}
        ) as notice_status,
        coalesce(administrators.administrators_with_email, 0) as administrators_with_email,
        coalesce(last_notice.notices_sent, 0) as notices_sent,
        last_notice.sent_at as last_notified_at,
        last_notice.effective_reset_date as notified_reset_date,
        last_notice.schedule_status as notified_schedule_status,
        last_notice.recipients as last_notice_recipients,
        last_notice.message_id as last_notice_message_id,
        -- what moved since: the date or status the notice announced is no longer the plan's
        coalesce(
            last_notice.district_id is not null
            and (
                last_notice.effective_reset_date <> schedule.effective_reset_date
                or last_notice.schedule_status <> schedule.status
            ),
            false
        ) as is_changed_after_notice,
        coalesce(changes_after.request_changes_after_notice, 0) as request_changes_after_notice

    from schedule
    left join districts
        on districts.district_id = schedule.district_id
    left join administrators
        on administrators.district_id = schedule.district_id
    left join last_notice
        on last_notice.district_id = schedule.district_id
    left join changes_after
        on changes_after.district_id = schedule.district_id

)

select * from final
