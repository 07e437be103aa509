"""One very large district, reset whole: the runner's peak memory stays flat however many rows a
district holds (the one pass streams each table through its Parquet file and fingerprints, it
never holds a table).

`generate --districts 1 --students-per-district N` (N from EOY_BENCH_BIG_STUDENTS, default
480,000: about 20 M rows) into a blank warehouse of each target, then `run --yes` in its own
process; its peak RSS (VmHWM), seconds and rows per second go to RESULTS.md.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from bench.bench_reset import AS_OF, eoy, measure, memory_gib
from bench.common import on_both_targets, write_section
from jobs.config import Settings

SECTION = "One large district"
STUDENTS = int(os.environ.get("EOY_BENCH_BIG_STUDENTS", "480000"))


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
    print(f"  generated in {gen.seconds:.0f} s", flush=True)
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
        f"One district of {STUDENTS:,} students (`generate --districts 1 --seed 1 "
        f"--students-per-district {STUDENTS}`), reset with `run --as-of {AS_OF} --yes` in its "
        f"own process; peak RSS is the process's VmHWM (dbt runs in it too). "
        f"{os.cpu_count()} cores, {memory_gib()} of memory; load average when it started: "
        f"{load:.1f}; python -m bench.bench_big_district."
    )
    write_section(SECTION, note, table)
    return 0 if all(r["completed"] == 1 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
