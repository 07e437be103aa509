"""Generate 1,000 synthetic districts (~10M academic rows), then `plan` them, on both targets.

Each step runs in a child process so its peak RSS is its own. PostgreSQL: a scratch database
on EOY_PG_DSN's server, or on a throwaway server when EOY_PG_DSN is unset; dropped after.

    .venv/bin/python -m bench.bench_generate_plan     (EOY_BENCH_DISTRICTS=100 for a quick run)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.common import on_both_targets, write_section
from jobs.config import Settings
from jobs.warehouse.connection import connect
from jobs.warehouse.schema import init_warehouse

SEED = 1
AS_OF = "2023-07-28"  # the 2023 default reset date: most districts are due
SECTION = "Generate and plan"
ACADEMIC = ("assessments", "progress", "pathways", "usage_sessions")

CHILD = """
import json, resource, sys, time
from datetime import date
from pathlib import Path
from jobs.config import Settings
args = json.loads(sys.argv[1])
settings = Settings(**{k: (Path(v) if v and k.endswith(("path", "root")) else v)
                      for k, v in args["settings"].items()})
start = time.perf_counter()
if args["what"] == "generate":
    from jobs.synthetic.generate import generate_districts
    from jobs.warehouse.connection import connect
    with connect(settings) as wh:
        doc = {"rows": generate_districts(wh, args["districts"], args["seed"],
                                          show_progress=False)}
else:
    from jobs.plan.planner import make_plan
    plan = make_plan(settings, date.fromisoformat(args["as_of"]), None)
    doc = {"totals": plan["totals"]}
doc["seconds"] = time.perf_counter() - start
doc["rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps(doc))
"""


def child(what: str, settings: Settings, **extra: Any) -> dict[str, Any]:
    args = {
        "what": what,
        "settings": {k: str(v) if v is not None else None for k, v in vars(settings).items()},
        **extra,
    }
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(args)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed: {proc.stderr.strip()[-2000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def bench_target(settings: Settings, districts: int) -> dict[str, Any]:
    with connect(settings, create=True, require_init=False) as wh:
        init_warehouse(wh)
    gen = child("generate", settings, districts=districts, seed=SEED)
    rows = sum(gen["rows"].values())
    print(f"  generate {rows:,} rows in {gen['seconds']:.1f}s", flush=True)
    plan = child("plan", settings, as_of=AS_OF)
    print(f"  plan {plan['seconds']:.1f}s", flush=True)
    return {"target": settings.target, "districts": districts, "gen": gen, "plan": plan}


def render(results: list[dict[str, Any]]) -> str:
    head = (
        "| target | districts | rows (academic) | generate | rows/s (academic rows/s) "
        "| peak RSS generate | plan | due / blocked | rows to delete | peak RSS plan |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = []
    for r in results:
        gen, plan = r["gen"], r["plan"]
        rows = sum(gen["rows"].values())
        academic = sum(gen["rows"][t] for t in ACADEMIC)
        totals = plan["totals"]
        lines.append(
            f"| {r['target']} | {r['districts']:,} | {rows:,} ({academic:,}) "
            f"| {gen['seconds']:.1f} s | {rows / gen['seconds']:,.0f} "
            f"({academic / gen['seconds']:,.0f}) | {gen['rss'] / 2**20:.0f} MiB "
            f"| {plan['seconds']:.1f} s "
            f"| {totals['districts']} / {totals['blocked']} "
            f"| {totals['rows']:,} | {plan['rss'] / 2**20:.0f} MiB |"
        )
    return head + "\n".join(lines) + "\n"


def main() -> int:
    districts = int(os.environ.get("EOY_BENCH_DISTRICTS", "1000"))
    load = os.getloadavg()[0]
    results = on_both_targets(
        "eoy-bench-gen-",
        f"{districts:,} districts",
        lambda settings, _scratch: bench_target(settings, districts),
    )
    table = render(results)
    print(table)
    note = (
        f"`eoy-reset generate --districts {districts} --seed {SEED}` (long-tailed sizes) into "
        f"an empty warehouse, then `eoy-reset plan --as-of {AS_OF}` (dbt build of the reset "
        f"models + reading the plan); {os.cpu_count()} cores; "
        "python -m bench.bench_generate_plan. Generate = numpy/pyarrow column building + bulk "
        "load per chunk of <= 50 districts / 25k students (DuckDB insert from Arrow; PostgreSQL "
        "binary COPY through ADBC, foreign keys dropped for the load and re-added, validated, "
        "after). Peak RSS of each step in its own process. Load average when it started: "
        f"{load:.1f} (other work on the machine slows every figure)."
    )
    write_section(SECTION, note, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
