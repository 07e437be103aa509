-- the reset-date rules 1-4, in order: judge the request, pick the candidate date, move it past
-- the last session day, then block it if it reaches the new year's rostering.
with

calendars as (

    select * from {{ ref('int_reset_calendars_joined') }}

),

session_ends as (

    select
        calendars.*,
        -- L: the later of the two session ends that are known
        case
            when calendars.school_year_end_date is null then calendars.summer_session_end_date
            when calendars.summer_session_end_date is null then calendars.school_year_end_date
            when calendars.summer_session_end_date > calendars.school_year_end_date
                then calendars.summer_session_end_date
            else calendars.school_year_end_date
        end as session_end_date
    from calendars

),

requests_judged as (

    select
        session_ends.*,
        -- rule 2: a request is valid iff R >= E and (S null or R < S); too early is said first
        case
            when session_ends.requested_reset_date is null then null
            when session_ends.requested_reset_date < session_ends.earliest_reset_date
                then 'request_too_early'
            when session_ends.rostering_start_date is not null
                and session_ends.requested_reset_date >= session_ends.rostering_start_date
                then 'request_not_before_rostering'
        end as request_issue
    from session_ends

),

candidates as (

    select
        requests_judged.*,
        case
            when requests_judged.requested_reset_date is not null
                and requests_judged.request_issue is null
                then requests_judged.requested_reset_date
            else requests_judged.default_reset_date
        end as candidate_reset_date,
        case
            when requests_judged.requested_reset_date is not null
                and requests_judged.request_issue is null
                then 'requested'
            else 'default'
        end as candidate_source
    from requests_judged

),

moved as (

    select
        candidates.*,
        -- rule 3: no reset while a session (school year or summer) still runs
        coalesce(
            candidates.session_end_date is not null
            and candidates.candidate_reset_date <= candidates.session_end_date,
            false
        ) as is_moved_past_session
    from candidates

),

effective as (

    select
        moved.*,
        case
            when moved.is_moved_past_session
                then cast({{ dbt.dateadd('day', 1, 'moved.session_end_date') }} as date)
            else moved.candidate_reset_date
        end as effective_reset_date,
        case
            when moved.is_moved_past_session then 'after_session_end'
            else moved.candidate_source
        end as date_source
    from moved

),

blocked as (

    select
        effective.*,
        -- rule 4: a reset on or after rostering start would delete the new year's rows
        coalesce(
            effective.rostering_start_date is not null
            and effective.effective_reset_date >= effective.rostering_start_date,
            false
        ) as is_blocked
    from effective

),

final as (

    select

        -- ids
        district_id,
        school_year,
        -- inputs
        has_request_row,
        default_reset_date,
        earliest_reset_date,
        requested_reset_date,
        session_end_date,
        rostering_start_date,
        -- the requests rule 2 and rule 3 would honour unmoved: from accepted_from (E, or the
        -- day after L when that is later) to accepted_until (the day before S; null: no end)
        case
            when session_end_date is not null and session_end_date >= earliest_reset_date
                then cast({{ dbt.dateadd('day', 1, 'session_end_date') }} as date)
            else earliest_reset_date
        end as accepted_from,
        cast({{ dbt.dateadd('day', -1, 'rostering_start_date') }} as date) as accepted_until,
        -- outcome
        effective_reset_date,
        cast(date_source as {{ dbt.type_string() }}) as date_source,
        cast(case when is_blocked then 'blocked' else 'scheduled' end as {{ dbt.type_string() }})
            as status,
        -- issue names in rule order, comma-separated, '' when none
        cast(substring(
            coalesce(',' || request_issue, '')
            || case
                when is_moved_past_session and candidate_source = 'requested'
                    then ',request_during_session'
                else ''
            end
            || case when is_blocked then ',conflicts_with_rostering' else '' end,
            2
        ) as {{ dbt.type_string() }}) as issues

    from blocked

)

select * from final
