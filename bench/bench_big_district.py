"""One very large district, reset whole: the runner's peak memory stays flat however many rows a
district holds (the one pass streams each table through its Parquet file and fingerprints, it
never holds a table).

`generate --districts 1 --students-per-district 25000` (the generator's most, about 1.07 M
rows) into a blank warehouse of each target, then every student-data row copied COPIES - 1
times more within the district (EOY_BENCH_BIG_COPIES, default 19: about 20 M rows), each copy's
keys and references to other student rows suffixed `~k`; then `run --yes` in its own process:
its peak RSS (VmHWM), seconds and rows per second go to RESULTS.md.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from bench.bench_reset import AS_OF, eoy, measure, memory_gib
from bench.common import on_both_targets, write_section
from jobs.config import Settings
from jobs.warehouse.connection import connect, quote_ident
from jobs.warehouse.contract import APP_TABLES, DELETED_TABLES, INSERT_ORDER

SECTION = "One large district"
STUDENTS = 25_000
COPIES = int(os.environ.get("EOY_BENCH_BIG_COPIES", "19"))


def multiply(settings: Settings, copies: int) -> int:
    """Copy every student-data row copies - 1 times within its district (parents first);
    returns the student-data rows now there."""
    by_name = {t.name: t for t in APP_TABLES}
    total = 0
    if settings.target == "postgres":
        series = "generate_series(1, %s) as s(k)"
    else:
        series = "range(1, %s + 1) as s(k)"
    with connect(settings) as wh:
        for name in INSERT_ORDER:
            table = by_name[name]
            # the row's own key and its references to other student-data rows get the suffix
            suffixed = set(table.primary_key) | {
                column
                for columns, parent, _ in table.foreign_keys
                if parent in DELETED_TABLES
                for column in columns
            }
            suffixed.discard("district_id")
            shown = ", ".join(
                f"{quote_ident(c)} || '~' || cast(k as text)" if c in suffixed else quote_ident(c)
                for c in table.column_names
            )
            with wh.transaction():
                wh.execute(
                    f"insert into app.{quote_ident(name)} "
                    f"select {shown} from app.{quote_ident(name)}, {series}",
                    [copies - 1],
                )
            total += int(wh.scalar(f"select count(*) from app.{quote_ident(name)}"))
            print(f"  {name}: {total:,} rows so far", flush=True)
    return total


def bench_target(settings: Settings, scratch: Path) -> dict[str, Any]:
    eoy(settings, "init")
    gen = measure(
        settings,
        "jobs",
        "generate",
        "--districts",
        "1",
        "--seed",
        "1",
        "--students-per-district",
        str(STUDENTS),
    )
    began = time.perf_counter()
    rows = multiply(settings, COPIES)
    print(f"  {rows:,} rows, copies made in {time.perf_counter() - began:.0f} s", flush=True)
    run = eoy(settings, "run", "--as-of", AS_OF, "--yes")
    totals = run.doc.get("totals", {})
    rows = int(totals.get("rows", 0))
    phases = run.doc.get("seconds_by_phase", {})
    result = {
        "target": settings.target,
        "rows": rows,
        "seconds": run.seconds,
        "districts_phase": phases.get("districts"),
        "rss": run.rss,
        "generate_rss": gen.rss,
        "completed": totals.get("by_status", {}).get("completed", 0),
    }
    print(f"  {result}", flush=True)
    return result


def render(results: list[dict[str, Any]]) -> str:
    lines = [
        "| target | rows deleted | run | districts phase | rows/s | peak RSS run "
        "| peak RSS generate |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        phase = r["districts_phase"] or r["seconds"]
        rate = f"{r['rows'] / phase:,.0f}" if phase else "—"
        lines.append(
            f"| {r['target']} | {r['rows']:,} | {r['seconds']:.1f} s | {phase:.1f} s | {rate} "
            f"| {(r['rss'] or 0) / 2**20:.0f} MiB | {(r['generate_rss'] or 0) / 2**20:.0f} MiB |"
        )
    return "\n".join(lines)


def main() -> int:
    load = os.getloadavg()[0]
    results = on_both_targets("eoy-bench-big-", "one large district", bench_target)
    table = render(results)
    print(table)
    note = (
        f"One district: `generate --districts 1 --seed 1 --students-per-district {STUDENTS}`, "
        f"then each student-data row copied {COPIES - 1} times more within the district (keys "
        f"suffixed), reset with `run --as-of {AS_OF} --yes` in its own process; peak RSS is "
        "the process's VmHWM (dbt runs in it too). "
        f"{os.cpu_count()} cores, {memory_gib()} of memory; load average when it started: "
        f"{load:.1f}; python -m bench.bench_big_district."
    )
    write_section(SECTION, note, table)
    return 0 if all(r["completed"] == 1 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
