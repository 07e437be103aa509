-- The districts each note belongs to: owner_id is an org unit, a campus or a learner,
-- as owner_kind says; no foreign key can say which, so no join path can either.
with

notes as (
    select note_id, owner_kind, owner_id from {{ source('sis', 'notes') }}
),

campuses as (
    select campus_id, org_unit_id from {{ source('sis', 'campuses') }}
),

learner_districts as (
    select learner_id, district_id from {{ ref('learner_districts') }}
),

on_org_units as (
    select notes.note_id, notes.owner_id as district_id
    from notes
    where notes.owner_kind = 'org_unit'
),

on_campuses as (
    select notes.note_id, campuses.org_unit_id as district_id
    from notes
    inner join campuses on campuses.campus_id = notes.owner_id
    where notes.owner_kind = 'campus' and campuses.org_unit_id is not null
),

on_learners as (
    select notes.note_id, learner_districts.district_id
    from notes
    inner join learner_districts on learner_districts.learner_id = notes.owner_id
    where notes.owner_kind = 'learner'
),

owned as (
    select * from on_org_units
    union all
    select * from on_campuses
    union all
    select * from on_learners
)

select * from owned
