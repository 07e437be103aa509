"""A few small districts of school year 2023 for the operator's-day tests.

- `early`: requested 2023-07-03, due from then on;
- `default`: no request, due from the default date 2023-07-28;
- `blocked`: rostering starts 2023-07-20, before its reset date: never due;
- `later`: requested 2023-08-15, not due on 2023-07-28.
"""

from __future__ import annotations

from datetime import date

from jobs.config import Settings
from jobs.schema import init_warehouse
from jobs.warehouse import Warehouse, connect
from tests.reset_data import insert_rows, request
from tests.runner_helpers import small_district

AS_OF = date(2023, 7, 28)
DAY_BEFORE = date(2023, 7, 27)
YEAR = 2023
DISTRICTS = ("early", "default", "blocked", "later")


def load(wh: Warehouse) -> None:
    for district in DISTRICTS:
        small_district(wh, district, students=2)
    insert_rows(
        wh,
        "district_reset_requests",
        [
            request("early", date(2023, 7, 3)),
            request("blocked", None, rostering=date(2023, 7, 20)),
            request("later", date(2023, 8, 15)),
        ],
    )


def fresh(settings: Settings) -> None:
    with connect(settings, create=True, require_init=False) as wh:
        init_warehouse(wh)
        load(wh)
