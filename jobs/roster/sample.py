"""A sample OneRoster export of reset districts, for the demo and for trying the import."""

from __future__ import annotations

import csv
from pathlib import Path

from jobs.roster.check import EDUCATOR_ROLES
from jobs.roster.read import (
    SPECS,
    RosterError,
)
from jobs.warehouse.connection import Warehouse

# ---------------------------------------------------------------------------------------
# a sample export, for the demo and for trying the import
# ---------------------------------------------------------------------------------------
SAMPLE_HEADERS = {name: spec.required + spec.optional for name, spec in SPECS.items()}


def write_sample_export(
    wh: Warehouse, district_id: str, school_year: int, folder: Path, per_class: int = 20
) -> Path:
    """A OneRoster 1.1 bulk export of a district's new school year, as its SIS would send it:
    the district's schools and educators as the warehouse keeps them, one class per teacher
    with a school, and `per_class` new students in each. Names come from the synthetic word
    lists; ids carry the district and the year, so they are new and the district's own."""
    from jobs.synthetic.names import FIRST_NAMES, LAST_NAMES

    schools = wh.query(
        "select school_id, name from app.schools where district_id = %s order by school_id",
        [district_id],
    )
    staff = wh.query(
        "select educator_id, school_id, email, first_name, last_name, role from app.educators "
        "where district_id = %s order by educator_id",
        [district_id],
    )
    if not schools:
        raise RosterError(f"district {district_id!r} has no schools to roster")
    orgs = [{"sourcedId": district_id, "name": district_id, "type": "district"}]
    orgs += [
        {"sourcedId": s, "name": name or s, "type": "school", "parentSourcedId": district_id}
        for s, name in schools
    ]
    users: list[dict[str, str]] = []
    classes: list[dict[str, str]] = []
    enrollments: list[dict[str, str]] = []
    for educator, school, email, first, last, role in staff:
        users.append(
            {
                "sourcedId": educator,
                "orgSourcedIds": school or district_id,
                "role": role if role in EDUCATOR_ROLES else "teacher",
                "givenName": first or "",
                "familyName": last or "",
                "email": email or "",
            }
        )
        if school is None or role == "administrator":
            continue
        n = len(classes)
        grade = 1 + n % 8
        cls = f"{district_id}-y{school_year}-c{n}"
        classes.append(
            {
                "sourcedId": cls,
                "title": f"Math {grade}" + (" facts" if n % 3 == 2 else ""),
                "schoolSourcedId": school,
            }
        )
        enrollments.append(
            {
                "sourcedId": f"{cls}-t",
                "classSourcedId": cls,
                "userSourcedId": educator,
                "role": "teacher",
                "primary": "true",
            }
        )
        for k in range(per_class):
            student = f"{district_id}-y{school_year}-st{n}-{k}"
            i = n * per_class + k
            users.append(
                {
                    "sourcedId": student,
                    "orgSourcedIds": school,
                    "role": "student",
                    "username": f"{district_id}.y{school_year}.{i}",
                    "givenName": FIRST_NAMES[i % len(FIRST_NAMES)],
                    "familyName": LAST_NAMES[(i * 7) % len(LAST_NAMES)],
                    "grades": f"{grade:02d}",
                }
            )
            enrollments.append(
                {
                    "sourcedId": f"{cls}-s{k}",
                    "classSourcedId": cls,
                    "userSourcedId": student,
                    "role": "student",
                }
            )
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in (
        ("orgs", orgs),
        ("users", users),
        ("classes", classes),
        ("enrollments", enrollments),
    ):
        with (folder / f"{name}.csv").open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, SAMPLE_HEADERS[name], restval="")
            writer.writeheader()
            writer.writerows(rows)
    return folder
