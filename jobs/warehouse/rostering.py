"""The new year's rostering, as the reset reads it: when a district's rostering for a school
year completed. Once rostering for school year Y + 1 has completed, the district's live rows
are next year's: school year Y is closed for it (no pass for Y deletes them, and Y's copy
comes from its snapshot parts only).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jobs.warehouse.connection import Warehouse


def rostered(
    wh: Warehouse, districts: list[str], school_year: int, relation: str
) -> dict[str, datetime]:
    """When rostering for `school_year` completed, for each of the districts that has one
    (`relation`: the table of the scope's rostering role)."""
    if not districts:
        return {}
    marks = ", ".join(["%s"] * len(districts))
    rows = wh.query(
        f"select district_id, min(completed_at) from {relation} "
        f"where school_year = %s and completed_at is not null and district_id in ({marks}) "
        "group by district_id",
        [school_year, *districts],
    )
    return {str(district): when for district, when in rows}


def closed_reason(school_year: int, completed_at: Any) -> str:
    """Why a school year is closed for a district, in one line."""
    when = f"{completed_at:%Y-%m-%d}" if hasattr(completed_at, "strftime") else str(completed_at)
    return (
        f"school year {school_year} is closed: rostering for {school_year + 1} completed on "
        f"{when}, so the live rows are {school_year + 1}'s (they go with the "
        f"{school_year + 1} reset)"
    )
