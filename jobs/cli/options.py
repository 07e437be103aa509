"""The options several commands share, each declared once (help texts as `--help` shows them)."""

from __future__ import annotations

from typing import Annotated

import typer

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of tables.")]
AsOfOpt = Annotated[
    str, typer.Option("--as-of", help="The day to plan for, YYYY-MM-DD (the reset date).")
]
DistrictOpt = Annotated[str, typer.Option("--district", help="District id.")]
SchoolYearOpt = Annotated[int, typer.Option("--school-year", help="School year.")]
# the school year of a plan: by default the year of its day
PlanYearOpt = Annotated[
    int | None,
    typer.Option(
        "--school-year",
        help="School year by the calendar year it ends in (2022-23 is 2023). "
        "Default: the year of --as-of.",
    ),
]
# the school year of what the ledger holds: by default its latest
LedgerYearOpt = Annotated[
    int | None,
    typer.Option(
        "--school-year",
        help="School year by the calendar year it ends in (2022-23 is 2023). "
        "Default: the latest school year in the ledger, else this year.",
    ),
]
YesOpt = Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")]
FormatOpt = Annotated[str, typer.Option("--format", help="csv (zipped, for people) or parquet.")]
