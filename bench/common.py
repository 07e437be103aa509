"""What every benchmark shares: a scratch PostgreSQL database, and its section of RESULTS.md."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from jobs.config import Settings
from tests.conftest import with_dbname

RESULTS = Path(__file__).with_name("RESULTS.md")


@contextmanager
def postgres_server() -> Iterator[str]:
    """A DSN to create databases with: EOY_PG_DSN, or a throwaway server's (destroyed after)."""
    base = os.environ.get("EOY_PG_DSN")
    if base:
        yield base
        return
    from tests.support.throwaway_pg import ThrowawayPostgres

    server = ThrowawayPostgres().start()
    try:
        yield server.dsn("postgres")
    finally:
        server.destroy()


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh database (DSN) on EOY_PG_DSN's server, or on a throwaway server; dropped after."""
    with postgres_server() as base:
        name = f"eoy_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(base, autocommit=True) as con:
            con.execute(f"create database {name}")
        try:
            yield with_dbname(base, name)
        finally:
            with psycopg.connect(base, autocommit=True) as con:
                con.execute(f"drop database if exists {name} with (force)")


# In a section of RESULTS.md, what follows this line is written by hand (what the figures
# mean, what was tried): a bench run replaces the figures above it and keeps the rest.
KEPT_NOTES = "<!-- written by hand: make bench keeps what follows -->"


def write_section(heading: str, note: str, table: str) -> None:
    """Replace (or add, at the end) one `## heading` section of RESULTS.md in its place,
    keeping the others and the section's own notes below KEPT_NOTES."""
    section = f"## {heading}\n\n{note}\n\n{table}".rstrip("\n")
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    parts = text.split("\n## ")
    out, placed = [parts[0].rstrip("\n")], False
    for part in parts[1:]:
        if part.split("\n", 1)[0].strip() != heading:
            out.append("## " + part.rstrip("\n"))
            continue
        notes = part[part.index(KEPT_NOTES) :].rstrip("\n") if KEPT_NOTES in part else ""
        out.append(f"{section}\n\n{notes}" if notes else section)
        placed = True
    if not placed:
        out.append(section)
    RESULTS.write_text("\n\n".join(out) + "\n")


def on_both_targets(
    prefix: str, what: str, bench_target: Callable[[Settings, Path], dict[str, Any]]
) -> list[dict[str, Any]]:
    """Run one benchmark on a scratch DuckDB file, then on a scratch PostgreSQL database."""
    scratch = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        print(f"== duckdb, {what}", flush=True)
        duck = Settings(
            target="duckdb",
            duckdb_path=scratch / "bench.duckdb",
            snapshot_root=scratch / "snapshots-duckdb",
        )
        results = [bench_target(duck, scratch)]
        duck.duckdb_path.unlink()
        with postgres_database() as dsn:
            print(f"== postgres, {what}", flush=True)
            pg = Settings(
                target="postgres",
                pg_dsn=dsn,
                snapshot_root=scratch / "snapshots-postgres",
                duckdb_path=scratch / "unused.duckdb",
            )
            results.append(bench_target(pg, scratch))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return results
