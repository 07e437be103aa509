"""A vendor's warehouse nothing like the demo's `app`: schema `sis`, its dbt project
(`project/`, which installs eoy-reset as a dbt package) and a deterministic generator.

What makes it unlike `app`: integer ids everywhere (integer district ids too); most student
tables have no district column and reach their district through a campus, a section or a
parent row; composite keys of up to five columns; a table with no primary key at all; an
`ON DELETE CASCADE` child (PostgreSQL) beside `NO ACTION` ones; a campus no district owns
(its rows are unowned); learners enrolled in two districts in the same year (shared rows);
and notes whose owner is polymorphic (`owner_kind`, `owner_id`), owned through a dbt model.
"""

from tests.vendor.schema import (
    DELETED,
    DISTRICTS_TABLE,
    NULL_CAMPUS,
    PROJECT,
    RETAINED,
    SCHEMA,
    VendorData,
    create_schema,
    district_ids,
    load,
)

__all__ = [
    "DELETED",
    "DISTRICTS_TABLE",
    "NULL_CAMPUS",
    "PROJECT",
    "RETAINED",
    "SCHEMA",
    "VendorData",
    "create_schema",
    "district_ids",
    "load",
]
