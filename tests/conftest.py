"""Real warehouses for every test: a DuckDB file in tmp_path, and a fresh database on a real
PostgreSQL server (EOY_PG_DSN, or a throwaway server the session starts itself).

Tests that take the `settings` or `wh` fixture run once per target.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from hypothesis.configuration import set_hypothesis_home_dir

from jobs.config import Settings
from jobs.warehouse.connection import Warehouse, connect
from jobs.warehouse.schema import init_warehouse
from tests.s3_server import ThrowawayS3, aws_env, checking_credentials
from tests.throwaway_pg import ThrowawayPostgres

# Hypothesis keeps its example database and its cache of source constants (which name the
# files they came from) outside the checkout.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "eoy-reset-hypothesis")

TARGETS = ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)]
# where snapshots go: a folder, or a bucket of a real S3 API (moto's server)
ROOTS = ["folder", pytest.param("s3", marks=pytest.mark.s3)]


def with_dbname(dsn: str, dbname: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


@pytest.fixture(scope="session")
def pg_base_dsn() -> Iterator[str]:
    """A PostgreSQL server for the whole session; databases are made per test."""
    dsn = os.environ.get("EOY_PG_DSN")
    if dsn:
        yield dsn
        return
    server = ThrowawayPostgres().start()
    try:
        yield server.dsn("postgres")
    finally:
        server.destroy()


def create_pg_database(base_dsn: str) -> str:
    name = f"eoy_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base_dsn, autocommit=True) as con:
        con.execute(f"create database {name}")
    return with_dbname(base_dsn, name)


def drop_pg_database(base_dsn: str, dsn: str) -> None:
    name = urlsplit(dsn).path.lstrip("/")
    with psycopg.connect(base_dsn, autocommit=True) as con:
        con.execute(f"drop database if exists {name} with (force)")


@pytest.fixture(scope="session", autouse=True)
def _clean_env() -> Iterator[None]:
    """The user's own EOY_* settings must not leak into what the tests build."""
    names = [k for k in os.environ if k.startswith("EOY_") and k != "EOY_PG_DSN"]
    saved = {k: os.environ.pop(k) for k in names}
    # the test-only fault switches (EOY_FAULT, EOY_PAUSE) act in this process and its children
    os.environ["EOY_TEST_FAULTS"] = "1"
    yield
    os.environ.pop("EOY_TEST_FAULTS", None)
    os.environ.update(saved)


def make_settings(target: str, tmp_path, request: pytest.FixtureRequest) -> Iterator[Settings]:
    snapshot_root = tmp_path / "snapshots"
    if target == "duckdb":
        yield Settings(
            target="duckdb",
            duckdb_path=tmp_path / "warehouse.duckdb",
            snapshot_root=snapshot_root,
        )
        return
    base = request.getfixturevalue("pg_base_dsn")
    dsn = create_pg_database(base)
    try:
        yield Settings(
            target="postgres",
            pg_dsn=dsn,
            snapshot_root=snapshot_root,
            duckdb_path=tmp_path / "unused.duckdb",
        )
    finally:
        drop_pg_database(base, dsn)


@pytest.fixture(params=TARGETS)
def target(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(target: str, tmp_path, request: pytest.FixtureRequest) -> Iterator[Settings]:
    """Settings for an empty warehouse of each target (not yet initialised)."""
    yield from make_settings(target, tmp_path, request)


@pytest.fixture
def wh(settings: Settings) -> Iterator[Warehouse]:
    """An initialised, empty warehouse of each target."""
    w = connect(settings, create=True, require_init=False)
    init_warehouse(w)
    try:
        yield w
    finally:
        w.close()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[ThrowawayS3]:
    """An S3 API for the whole session (moto's server on 127.0.0.1, an ephemeral port)."""
    server = ThrowawayS3().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_with_auth() -> Iterator[str]:
    """An S3 API that refuses every credential (moto's server checking them)."""
    with checking_credentials() as endpoint:
        yield endpoint


@pytest.fixture
def s3_root(s3_server: ThrowawayS3) -> Iterator[str]:
    """`s3://<a new Object Lock bucket>/snapshots`, with the AWS variables that reach it set
    for this process and the commands it starts."""
    bucket = s3_server.make_bucket(object_lock=True)
    with aws_env(s3_server.env()):
        yield f"s3://{bucket}/snapshots"


@pytest.fixture(params=ROOTS)
def root_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def rooted(settings: Settings, root_kind: str, request: pytest.FixtureRequest) -> Settings:
    """The settings fixture with its snapshots in a folder, or in an S3 bucket."""
    if root_kind == "folder":
        return settings
    return replace(settings, snapshot_root=request.getfixturevalue("s3_root"))
