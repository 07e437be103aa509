"""`eoy-reset generate`: load deterministic synthetic districts into schema app.

The rows come from jobs/synthetic.py, one chunk of districts at a time, so memory stays
bounded by one chunk; each chunk is bulk-loaded in foreign-key order (DuckDB from Arrow,
PostgreSQL by binary COPY through ADBC).
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date

from rich.console import Console
from rich.table import Table as RichTable

from jobs.config import PROJECT_DIR
from jobs.errors import EoyError
from jobs.synthetic.rows import (
    MAX_STUDENTS,
    Chunk,
    Policy,
    build_chunk,
    chunk_bounds,
    district_id,
    district_sizes,
    reset_calendar,
)
from jobs.warehouse.connection import Warehouse, quote_ident
from jobs.warehouse.contract import APP_TABLES


class GenerateError(EoyError):
    """Synthetic data could not be generated; the message says why and what to do."""


def reset_policy(school_year: int) -> Policy:
    """The row of seeds/reset_policy.csv for one school year."""
    path = PROJECT_DIR / "seeds" / "reset_policy.csv"
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if int(row["school_year"]) == school_year:
                return Policy(
                    school_year,
                    date.fromisoformat(row["default_reset_date"]),
                    date.fromisoformat(row["earliest_reset_date"]),
                )
    raise GenerateError(
        f"school year {school_year} has no row in seeds/reset_policy.csv: "
        "add its reset dates there or generate another school year"
    )


# -- loading ----------------------------------------------------------------------------
@contextmanager
def _progress(show: bool, total: int) -> Iterator[Callable[[int, int], None]]:
    """A tick(districts, rows) callback that drives a rich progress bar (or nothing)."""
    if not show:
        yield lambda districts, rows: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    started = time.perf_counter()
    loaded = 0
    columns = (
        TextColumn("generate"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("districts · {task.fields[rate]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task("generate", total=total, rate="")

        def tick(districts: int, rows: int) -> None:
            nonlocal loaded
            loaded += rows
            rate = loaded / max(time.perf_counter() - started, 1e-9)
            bar.update(task, advance=districts, rate=f"{rate:,.0f} rows/s")

        yield tick


@contextmanager
def _foreign_keys_suspended(wh: Warehouse) -> Iterator[None]:
    """PostgreSQL checks each foreign key row by row during COPY (most of the load time):
    drop the keys of schema app for the load, add them back after, validated in one pass."""
    if wh.target != "postgres":
        yield
        return
    keys = wh.query(
        "select t.relname, k.conname, pg_get_constraintdef(k.oid) from pg_constraint k "
        "join pg_class t on t.oid = k.conrelid join pg_namespace n on n.oid = t.relnamespace "
        "where k.contype = 'f' and n.nspname = 'app' order by t.relname, k.conname"
    )
    try:
        with wh.transaction():
            for table, name, _ in keys:
                wh.execute(
                    f"alter table app.{quote_ident(table)} drop constraint {quote_ident(name)}"
                )
    except Exception:  # not the tables' owner: load with the keys checked, only slower
        keys = []
    try:
        yield
    finally:
        failed = []
        for table, name, definition in keys:
            try:
                wh.execute(
                    f"alter table app.{quote_ident(table)} "
                    f"add constraint {quote_ident(name)} {definition}"
                )
            except Exception:
                failed.append(f"{table}.{name}")
        if failed:
            raise GenerateError(
                f"could not restore foreign key(s) {', '.join(failed)} after loading: "
                "the generated rows break them; drop schema app and run init and generate again"
            )


def _refuse_clash(wh: Warehouse, first: str, last: str, width: int) -> None:
    """District ids d00001… are the same for every seed: never load over existing ones."""
    rows = wh.query(
        "select district_id from app.districts where district_id between %s and %s "
        "and length(district_id) = %s order by district_id limit 3",
        [first, last, width + 1],
    )
    if rows:
        held = ", ".join(r[0] for r in rows)
        raise GenerateError(
            f"app already holds districts {held}…: generate into an empty warehouse "
            "(a new --duckdb-path or PostgreSQL database)"
        )


def generate_districts(
    wh: Warehouse,
    districts: int,
    seed: int,
    students_per_district: int | None = None,
    show_progress: bool = True,
    school_year: int = 2023,
) -> dict[str, int]:
    """Generate and load `districts` synthetic districts; rows loaded per app table."""
    if districts < 1:
        raise GenerateError(f"--districts must be at least 1, not {districts}")
    if seed < 0:
        raise GenerateError(f"--seed must be zero or positive, not {seed}")
    if students_per_district is not None and not 1 <= students_per_district <= MAX_STUDENTS:
        raise GenerateError(
            f"--students-per-district must be between 1 and {MAX_STUDENTS:,}, "
            f"not {students_per_district}"
        )
    policy = reset_policy(school_year)
    width = max(5, len(str(districts)))
    _refuse_clash(wh, district_id(0, width), district_id(districts - 1, width), width)
    sizes = district_sizes(districts, seed, students_per_district)
    calendar = reset_calendar(districts, seed, policy)
    counts = {t.name: 0 for t in APP_TABLES}
    with _foreign_keys_suspended(wh), _progress(show_progress, districts) as tick:
        for first, end in chunk_bounds(sizes):
            chunk = Chunk(first, sizes[first:end], calendar[first:end], width)
            rows = 0
            for name, table in build_chunk(chunk, seed, policy).items():
                if table.num_rows:
                    loaded = wh.load_arrow("app", name, table)
                    counts[name] += loaded
                    rows += loaded
            tick(end - first, rows)
    if wh.target == "postgres":  # fresh statistics, or the next plan scans blind
        for table in APP_TABLES:
            wh.execute(f"analyze app.{table.name}")
    return counts


def render_counts(console: Console, counts: dict[str, int]) -> None:
    """Rows loaded per app table, and the total."""
    table = RichTable(title="Rows generated in schema app")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in counts.items():
        table.add_row(name, f"{rows:,}")
    table.add_section()
    table.add_row("total", f"{sum(counts.values()):,}", style="bold")
    console.print(table)
