"""The plan as the operator reads it: tables laid out for the terminal's width.

The due table shows rows per deleted table. When it does not fit at full width its headers
are abbreviated (a legend says what each stands for); when that does not fit either, the
per-table counts go to a second table, and at last to one line per district and table.
Numbers are never cut.
"""

from __future__ import annotations

import textwrap
from typing import Any

from rich.console import Console
from rich.table import Table

from jobs.tables import fits, grid, print_fitted


def short_name(table: str) -> str:
    """A long table name's last word (classroom_enrollments: enrollments), else the name."""
    name = table.split(".")[-1]
    return name.rsplit("_", 1)[-1] if len(name) > 12 and "_" in name else name


class _ShortNames(dict[str, str]):
    """short_name of any table, as a mapping (`SHORT_NAMES.get(table, table)`)."""

    def get(self, table: str, default: str | None = None) -> str:  # type: ignore[override]
        return short_name(table)


SHORT_NAMES = _ShortNames()
SOURCES = {"after_session_end": "after session"}


def deleted_tables(plan: dict[str, Any]) -> list[str]:
    """The plan's deleted tables, in the order the scope declares them."""
    return list(plan["totals"]["rows_by_table"])


def abbreviation(table: str) -> str:
    """A three-letter header for a table: the first letter of its short name and the next
    two consonants (classrooms: cls, progress: prg)."""
    name = short_name(table)
    picked = name[:1]
    for letter in [c for c in name[1:] if c not in "aeiou"] + list(name[1:]):
        if len(picked) == 3:
            break
        if letter.isalnum() and letter not in picked:
            picked += letter
    return picked


def _legend(console: Console, tables: list[str]) -> None:
    console.print(
        "Rows per table: "
        + ", ".join(f"{abbreviation(t)} {t}" for t in tables)
        + "; inactive: inactive educators (a recommendation, nobody is deleted).",
        highlight=False,
    )


def render_due(console: Console, plan: dict[str, Any]) -> None:
    """The due districts with their rows per table, in the first layout that fits."""
    if not plan["due"]:
        console.print(f"No district is due as of {plan['as_of']}: nothing to delete.")
        return
    idle = plan.get("inactive_educators", {})
    tables = deleted_tables(plan)
    title = f"Due districts ({len(plan['due'])}): rows to snapshot and delete"
    ids = [
        [
            d["district_id"],
            d["effective_reset_date"],
            SOURCES.get(d["date_source"], d["date_source"]),
        ]
        for d in plan["due"]
    ]
    counts = [[f"{d['rows'].get(t, 0):,}" for t in tables] for d in plan["due"]]
    ends = [[f"{d['rows_total']:,}", f"{idle.get(d['district_id'], 0):,}"] for d in plan["due"]]
    head = ["district", "reset date", "source"]
    full = [*head, *(SHORT_NAMES.get(t, t) for t in tables), "total", "inactive educators"]
    short = [*head, *(abbreviation(t) for t in tables), "total", "inactive"]
    rows = [a + b + c for a, b, c in zip(ids, counts, ends, strict=True)]
    numbers = set(full[3:]) | set(short[3:])
    for header in (full, short):
        if fits(console, header, rows):
            console.print(grid(title, header, rows, right=numbers))
            if header is short:
                _legend(console, tables)
            return
    # two tables: the districts, then their rows per table
    first = [*head, "total", "inactive"]
    console.print(grid(title, first, [a + c for a, c in zip(ids, ends, strict=True)], numbers))
    per_table = ["district", *(abbreviation(t) for t in tables)]
    split = [[a[0], *b] for a, b in zip(ids, counts, strict=True)]
    if fits(console, per_table, split):
        console.print(grid("Rows per table", per_table, split, right=numbers))
        _legend(console, tables)
        return
    long = [
        [d["district_id"], t, f"{d['rows'].get(t, 0):,}"]
        for d in plan["due"]
        for t in tables
        if d["rows"].get(t, 0)
    ]
    console.print(grid("Rows per table", ["district", "table", "rows"], long, right=("rows",)))


def render_plan(console: Console, plan: dict[str, Any]) -> None:
    """The plan as rich tables: due, blocked, request issues, named but not due, totals."""
    console.print(
        f"Reset plan as of [bold]{plan['as_of']}[/bold], school year "
        f"[bold]{plan['school_year']}[/bold]"
    )
    # wrapped between its parts (host=… port=… dbname=…), never inside one: a path stays whole
    for line in textwrap.wrap(
        f"Warehouse {plan['warehouse']}",
        width=max(console.width, 20),
        break_long_words=False,
        break_on_hyphens=False,
        subsequent_indent="  ",
    ):
        console.print(line, soft_wrap=True, highlight=False, markup=False)
    render_due(console, plan)
    if plan["blocked"]:
        print_fitted(
            console,
            f"Blocked: a CSM must act ({len(plan['blocked'])})",
            ["district", "reset date", "reasons"],
            [
                [b["district_id"], b["effective_reset_date"], ", ".join(b["issues"])]
                for b in plan["blocked"]
            ],
            wrap=("reasons",),
        )
    if plan.get("closed"):
        print_fitted(
            console,
            f"Closed: the new year's rostering completed, not reset ({len(plan['closed'])})",
            ["district", "reset date", "reason"],
            [[c["district_id"], c["effective_reset_date"], c["reason"]] for c in plan["closed"]],
            wrap=("reason",),
        )
    if plan["request_issues"]:
        print_fitted(
            console,
            f"Request issues ({len(plan['request_issues'])})",
            ["district", "reset date", "source", "issues"],
            [
                [
                    r["district_id"],
                    r["effective_reset_date"],
                    SOURCES.get(r["date_source"], r["date_source"]),
                    ", ".join(r["issues"]),
                ]
                for r in plan["request_issues"]
            ],
            wrap=("issues",),
        )
    if plan.get("not_due"):
        print_fitted(
            console,
            "Named but not due",
            ["district", "reason"],
            [[n["district_id"], n["reason"]] for n in plan["not_due"]],
            wrap=("reason",),
        )
    render_restored(console, plan.get("restored", []))
    totals = plan["totals"]
    summary = Table(title="Totals", title_justify="left")
    summary.add_column("what", no_wrap=True)
    summary.add_column("count", justify="right", no_wrap=True)
    summary.add_row("districts due", f"{totals['districts']:,}")
    summary.add_row("districts blocked", f"{totals['blocked']:,}")
    if totals.get("closed"):
        summary.add_row("districts closed by rostering", f"{totals['closed']:,}")
    for table in deleted_tables(plan):
        summary.add_row(f"{table} rows to delete", f"{totals['rows_by_table'].get(table, 0):,}")
    summary.add_row("rows to delete", f"{totals['rows']:,}")
    for table, n in (plan.get("unowned") or {}).items():
        if n:  # a null on the way to a district: no reset deletes them
            summary.add_row(f"{table} rows no district owns (kept)", f"{n:,}")
    console.print(summary)
    for role, where in (plan.get("roles") or {}).items():
        console.print(f"{role}: {where}", highlight=False, markup=False, soft_wrap=True)


def render_restored(console: Console, restored: list[dict[str, Any]]) -> None:
    """The districts an operator restored, each with what resets it again (plan and run
    say it alike)."""
    for entry in restored:
        console.print(
            f"District {entry['district_id']} was restored: {entry['advice']}.",
            highlight=False,
            markup=False,
            soft_wrap=True,  # the command in it stays one line
        )
