"""The whole reset (`eoy-reset run`) against baselines on the same data, on both targets.

For each target (a DuckDB file, then a PostgreSQL database on EOY_PG_DSN's server or on a
throwaway one) and each size in EOY_BENCH_DISTRICT_SIZES (default "200,1000"): `init` +
`generate --districts N --seed 1` once into a template warehouse, kept pristine; every
measurement starts from a fresh copy of it (DuckDB: a file copy; PostgreSQL: `create database
… template …`), always at the same path or database name, so dbt's parse cache stays valid.

Measured, each in its own child process (wall time taken by this process around it, peak RSS
the child's own VmHWM):
  plan            `eoy-reset plan --json`, twice on the same copy (dbt parses, then reuses)
  ours            `eoy-reset run --yes --json` after a `plan` (untimed) on that copy
  ours, 2 workers PostgreSQL only: `run --workers 2` on a fresh copy, after a `plan`
  floor           the due rows read once and deleted, in one transaction, with the engine's
                  own bulk path (PostgreSQL binary COPY read into nothing; DuckDB COPY to
                  zstd Parquet), after a `plan` (untimed) built the due list
  floor, district files
                  DuckDB only: the floor writing the snapshots' layout, a file per due
                  district and table (DuckDB's own partitioned COPY), then the same deletes
  DBA script      per due district, one transaction: per table a CSV COPY to a file, then a
                  DELETE, as an operator would write it by hand
  empty district  `run` on the floor's copy, where every due district has nothing left to
                  delete: (run seconds - its dbt build) / due districts
  empty plan      `plan` twice on a warehouse that only had `init` (dbt's fixed cost)

Ratios within one run, never timed assertions.

    .venv/bin/python -m bench.bench_reset      (EOY_BENCH_DISTRICT_SIZES=20 for a quick run)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bench.common import postgres_server, write_section
from jobs.config import Settings
from jobs.warehouse.contract import DELETE_ORDER
from tests.conftest import with_dbname
from tests.support.crash_helpers import cli_env

SEED = 1
AS_OF = "2023-07-28"  # the 2023 default reset date: most districts are due
YEAR = 2023
SECTION = "Whole reset"
ROOT = Path(__file__).resolve().parent.parent
DUE_SQL = "select district_id from eoy.due_districts where school_year = %s order by district_id"

# Runs a module as `python -m` would, then writes the process's own peak RSS (VmHWM) to the
# file BENCH_PEAK_RSS_FILE names. ru_maxrss would carry the parent's peak across the exec.
WRAPPER = """
import atexit, os, resource, runpy, sys
def _peak():
    try:
        with open("/proc/self/status") as fh:
            peak = next(int(l.split()[1]) * 1024 for l in fh if l.startswith("VmHWM:"))
    except (OSError, StopIteration):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with open(os.environ["BENCH_PEAK_RSS_FILE"], "w") as fh:
        fh.write(str(peak))
atexit.register(_peak)
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


@dataclass
class Measured:
    seconds: float
    rss: int | None
    doc: dict[str, Any]
    returncode: int
    stderr: str
    busy: float | None = None  # cores kept busy on the whole machine, on average


def busy_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy so far (every core; a PostgreSQL server's
    work counts too): /proc/stat, all but idle and iowait."""
    try:
        with open("/proc/stat") as fh:
            ticks = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def measure(settings: Settings, module: str, *args: str, must_pass: bool = True) -> Measured:
    """`python -m module args` in a child process: wall seconds, peak RSS, its JSON output."""
    with tempfile.TemporaryDirectory(prefix="eoy-bench-rss-") as tmp:
        rss_file = Path(tmp) / "rss"
        env = {**cli_env(settings), "BENCH_PEAK_RSS_FILE": str(rss_file)}
        busy_before = busy_seconds()
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", WRAPPER, module, *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - start
        busy_after = busy_seconds()
        rss = int(rss_file.read_text()) if rss_file.exists() else None
    busy = None
    if busy_before is not None and busy_after is not None and seconds > 0:
        busy = (busy_after - busy_before) / seconds
    try:
        doc = json.loads(proc.stdout) if proc.stdout.strip() else {}
    except json.JSONDecodeError:
        doc = {}
    if must_pass and proc.returncode != 0:
        raise SystemExit(
            f"{module} {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}"
        )
    return Measured(seconds, rss, doc, proc.returncode, proc.stderr, busy)


def eoy(settings: Settings, *args: str, must_pass: bool = True) -> Measured:
    return measure(settings, "jobs", *args, "--json", must_pass=must_pass)


def plan(settings: Settings) -> Measured:
    return eoy(settings, "plan", "--as-of", AS_OF)


def baseline(settings: Settings, what: str, out: Path) -> Measured:
    """The floor or the DBA script, in its own child process."""
    return measure(settings, "bench.bench_reset", "--child", what, str(out))


# ---------------------------------------------------------------------------------------
# the baselines (run in the child process)
# ---------------------------------------------------------------------------------------
def quoted(text: str) -> str:
    """A SQL string literal (DuckDB's COPY takes no parameters)."""
    return "'" + text.replace("'", "''") + "'"


def floor_postgres(dsn: str) -> dict[str, Any]:
    """The due rows read once (binary COPY into nothing) and deleted, in one transaction."""
    rows = 0
    with psycopg.connect(dsn) as con, con.cursor() as cur:
        due = [d for (d,) in cur.execute(DUE_SQL, [YEAR]).fetchall()]
        for table in DELETE_ORDER:
            name = sql.Identifier("app", table)
            query = sql.SQL(
                "copy (select * from {} where district_id = any({}::text[])) "
                "to stdout (format binary)"
            ).format(name, sql.Literal(due))
            with cur.copy(query) as copy:
                for _ in copy:
                    pass
            cur.execute(sql.SQL("delete from {} where district_id = any(%s)").format(name), [due])
            rows += cur.rowcount
        con.commit()
    return {"due": len(due), "rows": rows}


def floor_duckdb(path: str, out: Path, per_district: bool = False) -> dict[str, Any]:
    """The due rows written once to zstd Parquet and deleted, in one transaction: a file per
    table, or (per_district) the snapshots' file per district and table, a folder per district,
    written by DuckDB's own partitioned COPY."""
    import duckdb

    rows = 0
    con = duckdb.connect(path)
    try:
        con.execute("begin")
        con.execute(f"create temp table due as {DUE_SQL.replace('%s', '?')}", [YEAR])
        due = int(con.execute("select count(*) from due").fetchone()[0])  # type: ignore[index]
        where = "district_id in (select district_id from due)"
        for table in DELETE_ORDER:
            target = quoted(str(out if per_district else out / f"{table}.parquet"))
            layout = (
                ", partition_by (district_id), write_partition_columns true, "
                f"filename_pattern {quoted(table)}, overwrite_or_ignore true"
                if per_district
                else ""
            )
            con.execute(
                f"copy (select * from app.{table} where {where}) "
                f"to {target} (format parquet, compression zstd{layout})"
            )
            rows += int(con.execute(f"delete from app.{table} where {where}").fetchone()[0])  # type: ignore[index]
        con.execute("commit")
    finally:
        con.close()
    files = sum(len(names) for _, _, names in os.walk(out))
    return {"due": due, "rows": rows, "files": files}


def dba_postgres(dsn: str, out: Path) -> dict[str, Any]:
    """Per due district, one transaction: per table a CSV COPY to a file, then a DELETE."""
    rows = 0
    with psycopg.connect(dsn) as con, con.cursor() as cur:
        due = [d for (d,) in cur.execute(DUE_SQL, [YEAR]).fetchall()]
        con.commit()
        for n, district in enumerate(due):
            folder = out / str(n)
            folder.mkdir()
            for table in DELETE_ORDER:
                name = sql.Identifier("app", table)
                query = sql.SQL(
                    "copy (select * from {} where district_id = {}) to stdout (format csv, header)"
                ).format(name, sql.Literal(district))
                with (folder / f"{table}.csv").open("wb") as fh, cur.copy(query) as copy:
                    for data in copy:
                        fh.write(data)
                cur.execute(
                    sql.SQL("delete from {} where district_id = %s").format(name), [district]
                )
                rows += cur.rowcount
            con.commit()
    return {"due": len(due), "rows": rows}


def dba_duckdb(path: str, out: Path) -> dict[str, Any]:
    import duckdb

    rows = 0
    con = duckdb.connect(path)
    try:
        due = [d for (d,) in con.execute(DUE_SQL.replace("%s", "?"), [YEAR]).fetchall()]
        for n, district in enumerate(due):
            folder = out / str(n)
            folder.mkdir()
            con.execute("begin")
            for table in DELETE_ORDER:
                target = quoted(str(folder / f"{table}.csv"))
                con.execute(
                    f"copy (select * from app.{table} where district_id = {quoted(district)}) "
                    f"to {target} (header)"
                )
                deleted = con.execute(
                    f"delete from app.{table} where district_id = ?", [district]
                ).fetchone()
                rows += int(deleted[0])  # type: ignore[index]
            con.execute("commit")
    finally:
        con.close()
    return {"due": len(due), "rows": rows}


def child_main(what: str, out: Path) -> int:
    settings = Settings.from_env()
    out.mkdir(parents=True, exist_ok=True)
    if settings.target == "postgres":
        dsn = settings.pg_dsn or ""
        doc = floor_postgres(dsn) if what == "floor" else dba_postgres(dsn, out)
    else:
        path = str(settings.duckdb_path)
        if what == "dba":
            doc = dba_duckdb(path, out)
        else:
            doc = floor_duckdb(path, out, per_district=what == "layout")
    print(json.dumps(doc))
    return 0


# ---------------------------------------------------------------------------------------
# warehouses: one pristine template per size, copied before each measurement
# ---------------------------------------------------------------------------------------
class Warehouses:
    """One target's template, the copy each measurement starts from, and an empty one."""

    def __init__(self, target: str, scratch: Path, server: str | None = None):
        self.target, self.scratch, self.server = target, scratch, server
        tag = uuid.uuid4().hex[:8]
        self.template = self._settings("template", f"eoy_bench_tpl_{tag}")
        self.case = self._settings("case", f"eoy_bench_case_{tag}")
        self.empty = self._settings("empty", f"eoy_bench_empty_{tag}")
        self.runs = 0

    def _settings(self, folder: str, dbname: str) -> Settings:
        (self.scratch / folder).mkdir(parents=True, exist_ok=True)
        return Settings(
            target=self.target,
            duckdb_path=self.scratch / folder / "warehouse.duckdb",
            pg_dsn=with_dbname(self.server, dbname) if self.server else None,
            snapshot_root=self.scratch / folder / "snapshots",
        )

    def _admin(self, statement: str) -> None:
        with psycopg.connect(self.server or "", autocommit=True) as con:
            con.execute(statement)

    def _dbname(self, settings: Settings) -> str:
        return (settings.pg_dsn or "").rsplit("/", 1)[1].split("?")[0]

    def _blank(self, settings: Settings) -> None:
        if self.target == "postgres":
            name = self._dbname(settings)
            self._admin(f"drop database if exists {name} with (force)")
            self._admin(f"create database {name}")
        else:
            for path in (settings.duckdb_path, Path(f"{settings.duckdb_path}.wal")):
                Path(path).unlink(missing_ok=True)

    def generate(self, districts: int) -> dict[str, Any]:
        """A new template: `init` + `generate` into a blank warehouse (no connection left)."""
        self._blank(self.template)
        eoy(self.template, "init")
        gen = eoy(self.template, "generate", "--districts", str(districts), "--seed", str(SEED))
        return {"rows": sum(gen.doc["rows"].values()), "seconds": gen.seconds}

    def copy(self) -> Settings:
        """The template, copied to the case's path or database name, with no snapshots."""
        if self.target == "postgres":
            case = self._dbname(self.case)
            self._admin(f"drop database if exists {case} with (force)")
            self._admin(f"create database {case} template {self._dbname(self.template)}")
        else:
            Path(f"{self.case.duckdb_path}.wal").unlink(missing_ok=True)
            shutil.copyfile(self.template.duckdb_path, self.case.duckdb_path)
        return self.fresh_snapshots(self.case)

    def fresh_snapshots(self, settings: Settings) -> Settings:
        """The same warehouse with a new, empty snapshot root (the previous one removed)."""
        shutil.rmtree(settings.snapshot_root, ignore_errors=True)
        self.runs += 1
        root = self.scratch / "snapshots" / str(self.runs)
        shutil.rmtree(root.parent, ignore_errors=True)
        root.mkdir(parents=True)
        return Settings(
            target=settings.target,
            duckdb_path=settings.duckdb_path,
            pg_dsn=settings.pg_dsn,
            snapshot_root=root,
        )

    def close(self) -> None:
        if self.target == "postgres":
            for settings in (self.case, self.template, self.empty):
                self._admin(f"drop database if exists {self._dbname(settings)} with (force)")


# ---------------------------------------------------------------------------------------
# one target
# ---------------------------------------------------------------------------------------
def run_doc(m: Measured, what: str) -> dict[str, Any]:
    """The JSON of a `run`, with what went wrong said on the console."""
    doc = m.doc
    if m.returncode != 0 or doc.get("failed") or not doc:
        print(
            f"  !! {what}: exit {m.returncode}, failed {doc.get('failed')}: "
            f"{m.stderr.strip()[-1500:]}",
            flush=True,
        )
    return doc


def scratch_dir(scratch: Path, name: str) -> Path:
    path = scratch / name
    shutil.rmtree(path, ignore_errors=True)
    return path


def bench_size(wh: Warehouses, districts: int) -> dict[str, Any]:
    t = wh.target
    gen = wh.generate(districts)
    print(f"  {districts:,} districts: generated {gen['rows']:,} rows", flush=True)
    r: dict[str, Any] = {"target": t, "districts": districts, "generated": gen["rows"]}

    # plan twice, then ours, on one copy
    case = wh.copy()
    first, second = plan(case), plan(case)
    totals = second.doc["totals"]
    r.update(plan_first=first.seconds, plan=second.seconds, plan_rss=second.rss)
    r.update(due=totals["districts"], rows_planned=totals["rows"])
    print(f"  plan {first.seconds:.1f} s, again {second.seconds:.1f} s", flush=True)
    ours = eoy(wh.fresh_snapshots(case), "run", "--as-of", AS_OF, "--yes", must_pass=False)
    doc = run_doc(ours, "ours")
    phases = doc.get("seconds_by_phase", {})
    r.update(
        ours=ours.seconds,
        ours_rss=ours.rss,
        ours_busy=ours.busy,
        failed=len(doc.get("failed") or []) if doc else None,
        rows=doc.get("totals", {}).get("rows", 0),
        ran=doc.get("totals", {}).get("districts", 0),
        build=phases.get("build_models"),
        district_phase=phases.get("districts"),
    )
    print(f"  ours {ours.seconds:.1f} s ({r['rows']:,} rows, phases {phases})", flush=True)

    if t == "postgres":
        case = wh.copy()
        plan(case)
        two = eoy(case, "run", "--as-of", AS_OF, "--yes", "--workers", "2", must_pass=False)
        doc2 = run_doc(two, "ours, 2 workers")
        r.update(
            ours2=two.seconds,
            ours2_busy=two.busy,
            ours2_districts=doc2.get("seconds_by_phase", {}).get("districts"),
            failed2=len(doc2.get("failed") or []) if doc2 else None,
        )
        print(f"  ours --workers 2 {two.seconds:.1f} s", flush=True)

    # the floor, then `run` on what it left: due districts with nothing to delete
    case = wh.copy()
    plan(case)
    floor = baseline(case, "floor", scratch_dir(wh.scratch, "floor"))
    shutil.rmtree(wh.scratch / "floor", ignore_errors=True)
    r.update(floor=floor.seconds, floor_rows=floor.doc["rows"], floor_due=floor.doc["due"])
    print(f"  floor {floor.seconds:.1f} s ({floor.doc['rows']:,} rows)", flush=True)
    if t == "duckdb":  # the same, writing a file per district and table, as snapshots do
        layout_case = wh.copy()
        plan(layout_case)
        layout = baseline(layout_case, "layout", scratch_dir(wh.scratch, "layout"))
        shutil.rmtree(wh.scratch / "layout", ignore_errors=True)
        r.update(
            layout=layout.seconds, layout_files=layout.doc["files"], layout_rows=layout.doc["rows"]
        )
        print(
            f"  floor, district files {layout.seconds:.1f} s ({layout.doc['files']:,} files)",
            flush=True,
        )
        case = layout_case  # it deleted the same rows as the floor: the run after it
    empty = eoy(wh.fresh_snapshots(case), "run", "--as-of", AS_OF, "--yes", must_pass=False)
    doc3 = run_doc(empty, "run after the floor")
    build = doc3.get("seconds_by_phase", {}).get("build_models", 0.0)
    phase = doc3.get("seconds_by_phase", {}).get("districts")
    ran = doc3.get("totals", {}).get("districts", 0)
    r.update(
        empty_ran=ran,
        empty_phase_each=phase / ran if ran and phase is not None else None,
        empty_failed=len(doc3.get("failed") or []) if doc3 else None,
        empty_each=(empty.seconds - build) / ran if ran else None,
        empty_rows=doc3.get("totals", {}).get("rows"),
    )
    print(f"  run with nothing to delete {empty.seconds:.1f} s ({ran} districts)", flush=True)

    case = wh.copy()
    plan(case)
    dba = baseline(case, "dba", scratch_dir(wh.scratch, "dba"))
    shutil.rmtree(wh.scratch / "dba", ignore_errors=True)
    r.update(dba=dba.seconds, dba_rows=dba.doc["rows"])
    print(f"  DBA script {dba.seconds:.1f} s ({dba.doc['rows']:,} rows)", flush=True)
    counts = {
        "planned": "rows_planned",
        "ours": "rows",
        "floor": "floor_rows",
        "floor in district files": "layout_rows",
        "DBA": "dba_rows",
    }
    found = {what: r[key] for what, key in counts.items() if key in r}
    if len(set(found.values())) > 1:
        print("  !! rows differ: " + ", ".join(f"{k} {v:,}" for k, v in found.items()), flush=True)
    return r


def plan_on_empty(wh: Warehouses) -> float:
    """`plan` twice on a warehouse that only had `init`: the second is dbt's fixed cost."""
    wh._blank(wh.empty)
    eoy(wh.empty, "init")
    plan(wh.empty)
    return plan(wh.empty).seconds


def bench_target(
    target: str, scratch: Path, sizes: list[int], server: str | None = None
) -> list[dict[str, Any]]:
    print(f"== {target}", flush=True)
    wh = Warehouses(target, scratch / target, server)
    try:
        results = [bench_size(wh, n) for n in sizes]
        empty = plan_on_empty(wh)
        print(f"  plan on an empty warehouse {empty:.1f} s", flush=True)
        for r in results:
            r["plan_empty"] = empty
        return results
    finally:
        wh.close()
        shutil.rmtree(scratch / target, ignore_errors=True)


# ---------------------------------------------------------------------------------------
# the section of RESULTS.md
# ---------------------------------------------------------------------------------------
def render(results: list[dict[str, Any]]) -> str:
    times = (
        "| target | districts | due | rows deleted | ours | dbt build | districts phase "
        "| plan (first / second) | floor | DBA script | ours / (plan + floor) "
        "| ours / (plan + DBA) |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    scale = (
        "| target | districts | rows/s (ours) | µs per row (vs smallest size) | peak RSS ours "
        "| cores busy (ours) | --workers 2 speed-up | empty district | plan, empty warehouse |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    smallest: dict[str, float] = {}
    for r in results:
        failed = f" (**{r['failed']} failed**)" if r["failed"] else ""
        times += (
            f"| {r['target']} | {r['districts']:,} | {r['due']:,} | {r['rows']:,}{failed} "
            f"| {r['ours']:.1f} s | {r['build'] or 0:.1f} s | {r['district_phase'] or 0:.1f} s "
            f"| {r['plan_first']:.1f} / {r['plan']:.1f} s | {r['floor']:.1f} s "
            f"| {r['dba']:.1f} s | {r['ours'] / (r['plan'] + r['floor']):.2f}x "
            f"| {r['ours'] / (r['plan'] + r['dba']):.2f}x |\n"
        )
        us = r["ours"] / r["rows"] * 1e6 if r["rows"] else float("nan")
        base = smallest.setdefault(r["target"], us)
        change = "" if base is us else f" ({(us / base - 1) * 100:+.0f}%)"
        if "ours2" in r:
            speed = f"{r['ours'] / r['ours2']:.2f}x"
            if r.get("ours2_districts") and r["district_phase"]:
                speed += f" (districts phase {r['district_phase'] / r['ours2_districts']:.2f}x)"
            if r.get("ours_busy") and r.get("ours2_busy"):
                cores = os.cpu_count() or 1
                speed += (
                    f"; {r['ours2_busy']:.2f} cores busy, at most {cores / r['ours_busy']:.2f}x"
                )
            if r.get("failed2"):
                speed += f" (**{r['failed2']} failed**)"
        else:
            speed = "—"
        empty = f"{r['empty_each'] * 1000:.0f} ms" if r["empty_each"] is not None else "—"
        if r["empty_phase_each"] is not None:
            empty += f" ({r['empty_phase_each'] * 1000:.0f} ms)"
        if r.get("empty_failed"):
            empty += f" (**{r['empty_failed']} failed**)"
        rss = f"{r['ours_rss'] / 2**20:.0f} MiB" if r["ours_rss"] else "—"
        busy = f"{r['ours_busy']:.2f} of {os.cpu_count()}" if r.get("ours_busy") else "—"
        rate = f"{r['rows'] / r['ours']:,.0f}" if r["rows"] else "—"
        scale += (
            f"| {r['target']} | {r['districts']:,} | {rate} | {us:.2f}{change} | {rss} "
            f"| {busy} | {speed} | {empty} | {r['plan_empty']:.1f} s |\n"
        )
    layout = "".join(
        f"| {r['target']} | {r['districts']:,} | {r['layout_files']:,} "
        f"| {r['layout']:.1f} s | {r['ours'] / (r['plan'] + r['layout']):.2f}x |\n"
        for r in results
        if "layout" in r
    )
    if layout:
        layout = (
            "\n| target | districts | files | floor, district files "
            "| ours / (plan + floor, district files) |\n"
            "|---|---:|---:|---:|---:|\n" + layout
        )
    return times + "\n" + scale + layout


def memory_gib() -> str:
    try:
        with open("/proc/meminfo") as fh:
            kib = next(int(line.split()[1]) for line in fh if line.startswith("MemTotal:"))
    except (OSError, StopIteration):
        return "unknown"
    return f"{kib / 2**20:.1f} GiB"


def note(sizes: list[int], load: float) -> str:
    return (
        f"The whole reset (`eoy-reset run --as-of {AS_OF} --yes`) against baselines on the "
        f"same data: `generate --districts N --seed {SEED}` once per size into a template, "
        "every measurement on a fresh copy of it (DuckDB file copy; PostgreSQL `create "
        f"database … template …`); sizes {', '.join(f'{n:,}' for n in sizes)}; "
        f"{os.cpu_count()} cores, {memory_gib()} of memory; load average when it started: "
        f"{load:.1f} (other work on the machine slows every figure); "
        "python -m bench.bench_reset. Each command runs in its own process; seconds are "
        "wall time around the process (start-up included).\n\n"
        "- **ours**: `run --yes`, after a `plan` (untimed) on the same copy, as an operator "
        "runs it; **dbt build** and **districts phase** are its own `seconds_by_phase` "
        "(rebuilding the reset models; snapshotting + deleting + verifying every due "
        "district, in batches of up to 128 districts and 300,000 rows per transaction (some "
        "30 of these districts), two batches at a time).\n"
        "- **plan**: `plan` twice on one copy; the first may parse the dbt project, the "
        "second uses partial parsing and is the one in the ratios.\n"
        "- **floor**: the same due rows read once and deleted in one transaction, children "
        "first: PostgreSQL binary `COPY … TO STDOUT` read into nothing by psycopg, then "
        "`DELETE … WHERE district_id = ANY(…)`; DuckDB `COPY … TO` zstd Parquet, then "
        "`DELETE`. No fingerprints, no verification, no ledger.\n"
        "- **floor, district files** (DuckDB): the floor writing the snapshots' layout, a file per "
        "due district and table in a folder per district (DuckDB's own partitioned `COPY`, "
        "zstd), then the same deletes: what the layout costs before any check; the floor "
        "above writes one file per table.\n"
        "- **DBA script**: per due district and table a CSV `COPY` (with header) to a file, "
        "then a `DELETE`, one transaction per district: what one would write by hand.\n"
        "- **ours / (plan + floor)**, **ours / (plan + DBA)**: how many times the baseline "
        "(which also needs the plan to know who is due) the whole reset takes; lower is "
        "better, 1.00x is as fast.\n"
        "- **µs per row**: ours seconds per row deleted; the change from the smallest size "
        "says whether the cost per row grows with the warehouse.\n"
        "- **peak RSS ours**: VmHWM of the `run` process (dbt runs in it).\n"
        "- **--workers 2 speed-up**: ours (one process, two batches at a time) / `run "
        "--workers 2` (two processes, a batch at a time each), whole command "
        "(and districts phase alone, the part the workers share out; the whole command "
        "also carries the dbt build's variation), on a fresh copy; PostgreSQL only (DuckDB "
        "allows one writer), with the cores 2 workers kept busy and the most they could "
        "gain: cores / cores busy with 1 worker (at best they keep every core busy, for "
        "the same work).\n"
        "- **cores busy (ours)**: the whole machine's busy CPU seconds (a PostgreSQL "
        "server's included) per wall second of `run`.\n"
        "- **empty district**: `run` on the floor's copy, where every due district is still "
        "due but has nothing left to delete: (run seconds - its dbt build) / due districts, "
        "the fixed cost of one district (ledger, pause syncs, empty snapshot, checks); in "
        "brackets its districts phase alone / due districts (without process start-up and "
        "reading the candidates, which weigh on small sizes).\n"
        "- **plan, empty warehouse**: the second of two `plan`s after only `init`: dbt's "
        "fixed cost with partial parsing (measured once per target)."
    )


def main() -> int:
    sizes = [int(s) for s in os.environ.get("EOY_BENCH_DISTRICT_SIZES", "200,1000").split(",") if s]
    load = os.getloadavg()[0]
    scratch = Path(tempfile.mkdtemp(prefix="eoy-bench-reset-"))
    try:
        results = bench_target("duckdb", scratch, sizes)
        with postgres_server() as server:
            results += bench_target("postgres", scratch, sizes, server)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    table = render(results)
    print(table)
    write_section(SECTION, note(sizes, load), table)
    failed = any(r["failed"] or r.get("failed2") or r.get("empty_failed") for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        sys.exit(child_main(sys.argv[2], Path(sys.argv[3])))
    sys.exit(main())
