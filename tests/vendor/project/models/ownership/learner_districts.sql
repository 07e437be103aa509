-- The districts each learner belongs to: those of the campuses it is enrolled at. A learner
-- enrolled in two districts has two rows; one enrolled only where no district runs the
-- campus has none (unowned).
with

enrolments as (
    select learner_id, campus_id from {{ source('sis', 'learner_enrolments') }}
),

campuses as (
    select campus_id, org_unit_id from {{ source('sis', 'campuses') }}
),

owned as (
    select distinct
        enrolments.learner_id,
        campuses.org_unit_id as district_id
    from enrolments
    inner join campuses on campuses.campus_id = enrolments.campus_id
    where campuses.org_unit_id is not null
)

select * from owned
