-- Every district's reset date for every school year of the policy, with the dates a request
-- would be honoured as asked: what `request-date` checks a CSM's request against, by the
-- same rules as reset_schedule (int_reset_dates_resolved). Organizations and dates only.
with

resolved as (

    select * from {{ ref('int_reset_dates_resolved') }}

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
        -- what a request may ask for
        accepted_from,
        accepted_until,
        -- outcome, as in reset_schedule
        effective_reset_date,
        date_source,
        status,
        issues

    from resolved

)

select * from final
