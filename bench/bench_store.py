"""Snapshots in a folder against an S3 bucket, and one runner host against two.

1. Store throughput: one Parquet file of EOY_BENCH_STORE_ROWS rows (default 2,000,000; text,
   numbers, timestamps, not very compressible) streamed through the store as the runner writes
   a table (`begin` → `open_output` → ParquetWriter → close), then read back whole as the
   verify step does, into a local folder and into a bucket of moto's S3 server on 127.0.0.1
   (an S3 API in Python on this machine: an upper bound on the client's overhead, not the
   network's).
2. The whole reset on PostgreSQL, EOY_BENCH_STORE_DISTRICTS districts (default 120): `run
   --yes --workers 2` with a folder root, with an s3:// root, and with the s3:// root split
   over two runner processes started at once (separate working folders and homes, as two
   hosts would be), each from the same template database.

    .venv/bin/python -m bench.bench_store
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
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq

from bench.common import postgres_server, write_section
from jobs.config import PROJECT_DIR, Settings
from jobs.snapshot.store import open_store
from tests.conftest import with_dbname
from tests.support.crash_helpers import cli_env
from tests.support.s3_server import ThrowawayS3, aws_env

SECTION = "Snapshot store: folder against S3"
ROWS = int(os.environ.get("EOY_BENCH_STORE_ROWS", "2000000"))
DISTRICTS = int(os.environ.get("EOY_BENCH_STORE_DISTRICTS", "120"))


def sample_table(rows: int) -> pa.Table:
    rng = np.random.default_rng(1)
    ids = pa.array([f"s{n:09d}-{v:x}" for n, v in enumerate(rng.integers(0, 2**40, rows))])
    return pa.table(
        {
            "progress_id": ids,
            "district_id": pa.array(["d00001"] * rows),
            "score": pa.array(rng.random(rows) * 100),
            "lesson": pa.array(rng.integers(0, 5000, rows).astype("int32")),
            "completed_at": pa.array(
                (rng.integers(1_650_000_000, 1_690_000_000, rows) * 1_000_000).astype(
                    "datetime64[us]"
                )
            ),
        }
    )


def store_throughput(settings: Settings, table: pa.Table) -> dict[str, Any]:
    store = open_store(settings)
    began = time.perf_counter()
    pending = store.begin(2023, "d00001")
    sink = pending.open_output("progress.parquet")
    with pq.ParquetWriter(sink, table.schema, compression="zstd") as writer:
        for batch in table.to_batches(max_chunksize=128_000):
            writer.write_batch(batch)
    sink.close()
    pending.sync()
    wrote = time.perf_counter() - began
    size = pending.size("progress.parquet")
    began = time.perf_counter()
    with pending.open_input("progress.parquet") as stored:
        data = stored.read()
    read = time.perf_counter() - began
    assert len(data) == size
    pending.discard()
    mib = size / 2**20
    return {
        "root": "s3://" if store.object_store else "folder",
        "mib": round(mib, 1),
        "write_mib_s": round(mib / wrote, 1),
        "read_mib_s": round(mib / read, 1),
    }


def host_run(settings: Settings, folder: Path) -> subprocess.Popen[str]:
    home = folder / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = {**cli_env(settings), "HOME": str(home), "PYTHONPATH": str(PROJECT_DIR)}
    args = ["run", "--as-of", "2023-07-28", "--yes", "--json", "--workers", "2"]
    return subprocess.Popen(
        [sys.executable, "-m", "jobs", *args],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def whole_reset(base: str, scratch: Path, server: ThrowawayS3) -> list[dict[str, Any]]:
    template = f"eoy_bench_store_tpl_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(base, autocommit=True) as con:
        con.execute(f"create database {template}")
    tpl = Settings(target="postgres", pg_dsn=with_dbname(base, template))
    env = cli_env(tpl)
    for args in (["init"], ["generate", "--districts", str(DISTRICTS), "--seed", "1"]):
        subprocess.run(
            [sys.executable, "-m", "jobs", *args], env=env, check=True, capture_output=True
        )
    results = []
    try:
        for label, kind, hosts in (
            ("folder, 1 runner", "folder", 1),
            ("s3://, 1 runner", "s3", 1),
            ("s3://, 2 runners", "s3", 2),
        ):
            name = f"eoy_bench_store_{uuid.uuid4().hex[:6]}"
            with psycopg.connect(base, autocommit=True) as con:
                con.execute(f"create database {name} template {template}")
            root: str | Path = scratch / f"snapshots-{name}"
            if kind == "s3":
                root = f"s3://{server.make_bucket()}/snapshots"
            settings = replace(tpl, pg_dsn=with_dbname(base, name), snapshot_root=root)
            began = time.perf_counter()
            procs = [host_run(settings, scratch / f"{name}-host{n}") for n in range(hosts)]
            docs = []
            for proc in procs:
                out, err = proc.communicate(timeout=3600)
                assert proc.returncode == 0, err
                docs.append(json.loads(out))
            seconds = time.perf_counter() - began
            done = [d for doc in docs for d in doc["districts"] if d["status"] == "completed"]
            rows = sum(int(d["rows_deleted"]) for d in done)
            results.append(
                {
                    "case": label,
                    "districts": len(done),
                    "rows": rows,
                    "seconds": round(seconds, 1),
                    "district_seconds": round(
                        max(doc["seconds_by_phase"].get("districts", 0) for doc in docs), 1
                    ),
                }
            )
            print(results[-1], flush=True)
            with psycopg.connect(base, autocommit=True) as con:
                con.execute(f"drop database if exists {name} with (force)")
    finally:
        with psycopg.connect(base, autocommit=True) as con:
            con.execute(f"drop database if exists {template} with (force)")
    return results


def main() -> int:
    scratch = Path(tempfile.mkdtemp(prefix="eoy-bench-store-"))
    server = ThrowawayS3().start()
    try:
        with aws_env(server.env()):
            table = sample_table(ROWS)
            folder = store_throughput(Settings(snapshot_root=scratch / "snapshots"), table)
            bucket = f"s3://{server.make_bucket()}/snapshots"
            s3 = store_throughput(Settings(snapshot_root=bucket), table)
            print(folder, s3, flush=True)
            with postgres_server() as base:
                runs = whole_reset(base, scratch, server)
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    lines = [
        "| root | file (MiB) | write MiB/s | read back MiB/s |",
        "|---|---:|---:|---:|",
        *(
            f"| {r['root']} | {r['mib']} | {r['write_mib_s']} | {r['read_mib_s']} |"
            for r in (folder, s3)
        ),
        "",
        f"Whole reset on PostgreSQL, {DISTRICTS} districts generated (seed 1), as of 2023-07-28,"
        " `--workers 2` per runner:",
        "",
        "| case | districts reset | rows deleted | wall s | districts phase s |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {r['case']} | {r['districts']} | {r['rows']:,} | {r['seconds']} | "
            f"{r['district_seconds']} |"
            for r in runs
        ),
    ]
    note = (
        f"{ROWS:,} rows in one zstd Parquet file through the store, written and read back; "
        "the bucket is moto's S3 server on 127.0.0.1 (Python), on a 2-core machine shared "
        "with other work: ratios, not absolutes."
    )
    write_section(SECTION, note, "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
