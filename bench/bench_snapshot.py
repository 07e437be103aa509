"""Snapshot export + verify of one 10M-row district against the raw floor, on both targets.

Floor, measured in the same run on the same rows: DuckDB `COPY (SELECT …) TO` Parquet (zstd);
PostgreSQL `COPY (SELECT …) TO STDOUT` read by psycopg into nothing. The export and the verify
each run in a child process so their peak RSS is their own. Goal: >= 0.7x the floor's rows/s.

    .venv/bin/python -m bench.bench_snapshot      (EOY_BENCH_ROWS=1000000 for a quick run)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb

from bench.common import on_both_targets, write_section
from jobs.config import Settings
from jobs.contract import DELETED_TABLES, SQL_TYPES, TABLES
from jobs.export import select_sql
from jobs.schema import init_warehouse
from jobs.warehouse import connect

DISTRICT = "bench-district"
YEAR = 2024
# share of the district's rows per table (sums to 1)
SHARES = {
    "students": 0.02,
    "classrooms": 0.001,
    "classroom_enrollments": 0.02,
    "assessments": 0.30,
    "progress": 0.40,
    "pathways": 0.029,
    "usage_sessions": 0.23,
}


def synthetic_sql(table: str, n: int, students: int, classrooms: int) -> str:
    """DuckDB SQL making n rows of a table for the bench district (any realistic shape)."""
    d = f"'{DISTRICT}'"
    ts = "timestamp '2023-08-20 07:00:00' + to_microseconds(i * 7919)"
    stu = f"'s-' || (i % {students})"
    exprs = {
        "students": [
            "'s-' || i",
            d,
            "'sch-1'",
            "'user' || i",
            "'First' || (i % 977)",
            "'Last' || (i % 1361)",
            "['K','1','2','3','4','5'][1 + i % 6]",
            ts,
        ],
        "classrooms": ["'c-' || i", d, "'sch-1'", "'e-1'", "'imagine_math'", "'Class ' || i", ts],
        "classroom_enrollments": [f"'c-' || (i % {classrooms})", "'s-' || i", d],
        "assessments": ["'a-' || i", d, stu, "'imagine_math'", "'benchmark'", ts, "1000 + i % 900"],
        "progress": [
            "'p-' || i",
            d,
            stu,
            "'imagine_math_facts'",
            "'lesson-' || (i % 400)",
            "'completed'",
            ts,
            "(i % 1000) / 10.0",
        ],
        "pathways": [
            "'pw-' || i",
            d,
            stu,
            "'imagine_math'",
            "'Pathway ' || (i % 40)",
            "'3_plus'",
            ts,
        ],
        "usage_sessions": ["'u-' || i", d, stu, "'imagine_math'", ts, "i % 60"],
    }
    types = SQL_TYPES["duckdb"]
    cols = ", ".join(
        f"cast({e} as {types[kind]}) as {name}"
        for e, (name, kind) in zip(exprs[table], TABLES[table].columns, strict=True)
    )
    return f"select {cols} from range({n}) t(i)"


def load(settings: Settings, total: int) -> dict[str, int]:
    counts = {t: max(1, int(total * s)) for t, s in SHARES.items()}
    counts["classroom_enrollments"] = counts["students"]
    counts["progress"] += total - sum(counts.values())
    gen = duckdb.connect()
    with connect(settings, create=True, require_init=False) as wh:
        init_warehouse(wh)
        wh.execute("insert into app.districts values (%s, 'Bench', 'TX')", [DISTRICT])
        wh.execute("insert into app.schools values ('sch-1', %s, 'School')", [DISTRICT])
        wh.execute(
            "insert into app.educators (educator_id, district_id, school_id, role) "
            "values ('e-1', %s, 'sch-1', 'teacher')",
            [DISTRICT],
        )
        if wh.target == "postgres":  # bench data is consistent by construction: skip FK triggers
            with wh.adbc().cursor() as cur:  # type: ignore[attr-defined]
                cur.execute("set session_replication_role = replica")
            wh.adbc().commit()  # type: ignore[attr-defined]
        for table in DELETED_TABLES:  # parents first
            sql = synthetic_sql(table, counts[table], counts["students"], counts["classrooms"])
            if wh.target == "duckdb":
                wh.execute(f"insert into app.{table} {sql}")
            else:
                wh.load_arrow("app", table, gen.sql(sql).to_arrow_reader(200_000))
        if wh.target == "postgres":
            wh.execute("vacuum analyze")
    gen.close()
    return counts


def floor(settings: Settings, scratch: Path) -> float:
    """Seconds to dump the district's rows with the engine's own bulk path."""
    with connect(settings) as wh:
        start = time.perf_counter()
        for table in DELETED_TABLES:
            if wh.target == "duckdb":
                sql = select_sql(table, "duckdb", f"'{DISTRICT}'")
                out = scratch / f"floor-{table}.parquet"
                wh.execute(f"copy ({sql}) to '{out}' (format parquet, compression zstd)")
            else:
                sql = select_sql(table, "postgres", f"'{DISTRICT}'")
                with wh.con.cursor() as cur, cur.copy(f"copy ({sql}) to stdout") as copy:
                    for _ in copy:
                        pass
        return time.perf_counter() - start


CHILD = """
import json, sys, time
from pathlib import Path
from jobs.config import Settings
args = json.loads(sys.argv[1])
settings = Settings(**{k: (Path(v) if k.endswith(("path", "root")) else v)
                      for k, v in args["settings"].items()})
from jobs.export import export_district
from jobs.verify import verify_snapshot
from jobs.warehouse import connect
start = time.perf_counter()
if args["what"] == "export":
    with connect(settings) as wh:
        doc = export_district(wh, settings, args["district"], args["year"])
    ok, rows = True, sum(t["rows"] for t in doc["tables"].values())
else:
    doc = verify_snapshot(Path(args["path"]))
    ok, rows = doc["ok"], sum(t.get("rows") or 0 for t in doc["tables"].values())
seconds = time.perf_counter() - start
# VmHWM is this process's own peak; ru_maxrss would inherit the parent's across exec
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")]
rss = int(hwm[0].split()[1]) * 1024
print(json.dumps({"seconds": seconds, "rows": rows, "ok": ok, "rss": rss,
                  "path": doc.get("path") or doc.get("directory")}))
"""


def child(what: str, settings: Settings, **extra: Any) -> dict[str, Any]:
    args = {
        "what": what,
        "district": DISTRICT,
        "year": YEAR,
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


def bench_target(settings: Settings, total: int, scratch: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    counts = load(settings, total)
    rows = sum(counts.values())
    print(f"  loaded {rows:,} rows in {time.perf_counter() - t0:.1f}s", flush=True)
    floor_s = min(floor(settings, scratch) for _ in range(2))
    print(f"  floor {floor_s:.2f}s", flush=True)
    exp = child("export", settings)
    print(f"  export {exp['seconds']:.2f}s, peak RSS {exp['rss'] / 2**20:.0f} MiB", flush=True)
    ver = child("verify", settings, path=exp["path"])
    print(f"  verify {ver['seconds']:.2f}s ok={ver['ok']}", flush=True)
    assert exp["rows"] == rows and ver["ok"] and ver["rows"] == rows
    size = sum(p.stat().st_size for p in Path(exp["path"]).iterdir())
    return {
        "target": settings.target,
        "rows": rows,
        "floor_s": floor_s,
        "export_s": exp["seconds"],
        "verify_s": ver["seconds"],
        "export_rss": exp["rss"],
        "verify_rss": ver["rss"],
        "bytes": size,
    }


def render(results: list[dict[str, Any]]) -> str:
    head = (
        "| target | rows | floor rows/s | export rows/s (x floor) | verify rows/s (x floor) "
        "| export+verify rows/s (x floor) | peak RSS export / verify | snapshot size |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = []
    for r in results:
        floor_rate = r["rows"] / r["floor_s"]

        def rate(seconds: float, n: int = r["rows"], fr: float = floor_rate) -> str:
            return f"{n / seconds:,.0f} ({n / seconds / fr:.2f}x)"

        lines.append(
            f"| {r['target']} | {r['rows']:,} | {floor_rate:,.0f} ({r['floor_s']:.1f} s) "
            f"| {rate(r['export_s'])} | {rate(r['verify_s'])} "
            f"| {rate(r['export_s'] + r['verify_s'])} "
            f"| {r['export_rss'] / 2**20:.0f} / {r['verify_rss'] / 2**20:.0f} MiB "
            f"| {r['bytes'] / 2**20:.0f} MiB |"
        )
    return head + "\n".join(lines) + "\n"


def main() -> int:
    total = int(os.environ.get("EOY_BENCH_ROWS", "10000000"))
    load_at_start = os.getloadavg()[0]
    results = on_both_targets(
        "eoy-bench-snap-",
        f"{total:,} rows",
        lambda settings, scratch: bench_target(settings, total, scratch),
    )
    table = render(results)
    print(table)
    cpus = os.cpu_count()
    note = (
        f"One district of {total:,} rows over the 7 student tables; {cpus} cores; "
        f"python -m bench.bench_snapshot. Floor: DuckDB `COPY (SELECT …) TO` Parquet zstd; "
        "PostgreSQL `COPY (SELECT …) TO STDOUT` read into nothing by psycopg. Export = "
        "stream + Polars shaping + fingerprints + Parquet + sha256 + manifest; verify = "
        "sha256 + full re-read + fingerprints. Peak RSS (VmHWM) of each in its own process. "
        f"Load average when it started: {load_at_start:.1f} (other work on the machine slows "
        "every figure).\n\n"
        "Where the export's CPU goes (4,000,000 rows, each part alone, CPU seconds): content "
        "fingerprint (XXH64 words chained by SplitMix64, Polars + numpy) 0.35; key "
        "fingerprint (MD5 of the primary key, DuckDB) 0.76; DuckDB writing the zstd Parquet "
        "from Arrow 1.05; against a DuckDB floor of about 0.65 s of wall time. Those three "
        "alone need 1.08 s on 2 cores even perfectly overlapped, so on DuckDB an export that "
        "fingerprints every row from the source cannot reach 0.7x here. The key fingerprint "
        "stays MD5 so that the delete can check, in SQL on either target, exactly which keys "
        "it removes. PostgreSQL's floor is bound by the server's COPY, so the ratio is "
        "better there."
    )
    write_section("Snapshots", note, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
