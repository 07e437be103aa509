"""What every benchmark shares: a scratch PostgreSQL database, and its section of RESULTS.md."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from tests.conftest import with_dbname

RESULTS = Path(__file__).with_name("RESULTS.md")


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh database (DSN) on EOY_PG_DSN's server, or on a throwaway server; dropped after."""
    server = None
    base = os.environ.get("EOY_PG_DSN")
    if not base:
        from tests.throwaway_pg import ThrowawayPostgres

        server = ThrowawayPostgres().start()
        base = server.dsn("postgres")
    name = f"eoy_bench_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(base, autocommit=True) as con:
            con.execute(f"create database {name}")
        try:
            yield with_dbname(base, name)
        finally:
            with psycopg.connect(base, autocommit=True) as con:
                con.execute(f"drop database if exists {name} with (force)")
    finally:
        if server is not None:
            server.destroy()


def write_section(heading: str, note: str, table: str) -> None:
    """Replace (or add) one `## heading` section of RESULTS.md, keeping the others."""
    section = f"## {heading}\n\n{note}\n\n{table}"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    parts = text.split("\n## ")
    kept = [parts[0].rstrip("\n")] + [
        "## " + p.rstrip("\n") for p in parts[1:] if not p.startswith(heading)
    ]
    RESULTS.write_text("\n\n".join([*kept, section.rstrip("\n")]) + "\n")
