-- Every district's reset date for every school year of the policy, with the dates a request
-- would be honoured as asked: what `request-date` checks a CSM's request against, by the
-- same rules as reset_schedule (int_reset_dates_resolved). Organizations and dates only.
with

resolved as (

    select * from {{ ref('int_reset_dates_resolved') }}

)

-- the rules' columns as they give them: ids, inputs, what a request may ask for, the outcome
select * from resolved
