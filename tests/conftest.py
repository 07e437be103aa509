"""Real warehouses for every test: a DuckDB file in tmp_path, and a fresh database on a real
PostgreSQL server (EOY_PG_DSN, or a throwaway server the session starts itself).

Tests that take the `settings` or `wh` fixture run once per target.

Under pytest-xdist (`make test`, `make check`) the workers share one throwaway server: the
first worker that needs it starts it, the last one done with it stops it. Databases have
random names; tests that change what the whole server shares (its roles, pg_hba.conf) take
the `pg_server_wide` lock, and the tests of one module-scoped warehouse go to one worker.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb
import psycopg
import pytest
from hypothesis.configuration import set_hypothesis_home_dir

from jobs.config import Settings
from jobs.scope.current import forget_scope
from jobs.warehouse.connection import Warehouse, connect
from jobs.warehouse.schema import init_warehouse
from tests.support.built import Template, Templates, initialised, with_dbname
from tests.support.chromium import install_in_background
from tests.support.in_process import close_dbt_duckdb
from tests.support.locks import file_lock
from tests.support.s3_server import ThrowawayS3, aws_env, checking_credentials
from tests.support.throwaway_pg import ThrowawayPostgres

# Hypothesis keeps its example database and its cache of source constants (which name the
# files they came from) outside the checkout.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "eoy-reset-hypothesis")

TARGETS = ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)]
# where snapshots go: a folder, or a bucket of a real S3 API (moto's server)
ROOTS = ["folder", pytest.param("s3", marks=pytest.mark.s3)]


@contextlib.contextmanager
def shared_server(root: Path) -> Iterator[str]:
    """The throwaway server of every xdist worker of this run (root: the run's base temp).

    A count of the workers using it sits beside it; the worker that brings it to zero stops
    the server, and a worker that needs one after that starts it again."""
    lock, state = root / "pg.lock", root / "pg.json"
    with file_lock(lock):
        if state.exists():
            info = json.loads(state.read_text())
        else:
            server = ThrowawayPostgres().start()
            info = {"root": str(server.root), "port": server.port, "users": 0}
        info["users"] += 1
        state.write_text(json.dumps(info))
    try:
        yield f"postgresql://postgres@127.0.0.1:{info['port']}/postgres"
    finally:
        with file_lock(lock):
            info = json.loads(state.read_text())
            info["users"] -= 1
            if info["users"]:
                state.write_text(json.dumps(info))
            else:
                state.unlink()
                ThrowawayPostgres.attach(Path(info["root"]), int(info["port"])).destroy()


@pytest.fixture(scope="session")
def pg_base_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL server for the whole session; databases are made per test."""
    dsn = os.environ.get("EOY_PG_DSN")
    if dsn:
        yield dsn
        return
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # each worker's base temp is a folder of the run's own base temp
        with shared_server(tmp_path_factory.getbasetemp().parent) as shared:
            yield shared
        return
    server = ThrowawayPostgres().start()
    try:
        yield server.dsn("postgres")
    finally:
        server.destroy()


def create_pg_database(
    base_dsn: str, name: str | None = None, template: Template | None = None
) -> str:
    """A new database, empty or a copy of template (a random name unless given; one left by
    an earlier test of that name is dropped first)."""
    name = name or f"eoy_test_{uuid.uuid4().hex[:12]}"
    dsn = with_dbname(base_dsn, name)
    with psycopg.connect(base_dsn, autocommit=True) as con:
        con.execute(f"drop database if exists {name} with (force)")
        if template is None:
            con.execute(f"create database {name}")
    if template is not None:
        template.clone(replace(template.settings(), pg_dsn=dsn))
    return dsn


def drop_pg_database(base_dsn: str, dsn: str) -> None:
    name = urlsplit(dsn).path.lstrip("/")
    with psycopg.connect(base_dsn, autocommit=True) as con:
        con.execute(f"drop database if exists {name} with (force)")


@pytest.fixture(autouse=True)
def _scope_of_one_test() -> Iterator[None]:
    """A scope a test's commands loaded (a vendor's, run in this process) ends with the test,
    as it ends with a command's own process: the next test starts from the demo's."""
    yield
    forget_scope()


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


# Where a test's warehouse lives. dbt keeps its parse of the project (target/
# partial_parse.msgpack) per warehouse, valid only for the same DuckDB path or database name:
# a warehouse at a new place costs a full parse (seconds) at its first dbt build. So a test's
# warehouse takes a free place of this process's pool, the same path or database name as an
# earlier test's, emptied of everything but dbt's parse (the models are still built, on the
# test's own data, by whatever the test runs). Snapshots stay in the test's tmp_path.
_SESSION = uuid.uuid4().hex[:8]
# places of a test under way, and DuckDB places never to be used again in this process
_PLACES_IN_USE: set[tuple[str, int]] = set()


def _take_place(target: str) -> int:
    n = 0
    while (target, n) in _PLACES_IN_USE:
        n += 1
    _PLACES_IN_USE.add((target, n))
    return n


def _still_open(path: Path) -> bool:
    """Whether this process still holds the DuckDB database at path (a connection an earlier
    test left open): DuckDB would give a new connection that database, deleted file or not.
    A new database creates its file at once; one still open does not."""
    duckdb.connect(str(path)).close()
    if not path.exists():
        return True
    path.unlink()
    path.with_name(path.name + ".wal").unlink(missing_ok=True)
    return False


def _empty_but_dbt_parse(folder: Path) -> None:
    """Remove everything in folder except dbt's parse of each warehouse (its own partial
    parse, and the manifests the commands keep), and the digest of the manifest the scope is
    read from (each kept under the project's digest)."""
    kept = [
        *folder.glob("dbt/*/target/partial_parse.msgpack"),
        *folder.glob("dbt/*/manifests/*.pickle"),
        *folder.glob("dbt/*/scope/*.json"),
    ]
    keep = {p.resolve() for p in kept}
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.resolve() in keep:
            continue
        if path.is_dir() and not path.is_symlink():
            if not any(path.iterdir()):
                path.rmdir()
        else:
            path.unlink()


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Templates]:
    """The warehouses this process builds once and clones for each test (support/built.py)."""
    made = Templates(tmp_path_factory.getbasetemp() / "templates")
    try:
        yield made
    finally:
        made.drop_all()


def template_of(
    request: pytest.FixtureRequest, name: str, target: str, make: Callable[[Settings], None]
) -> Template:
    """The session's template of that shape on the target, made on first use."""
    base = request.getfixturevalue("pg_base_dsn") if target == "postgres" else None
    templates: Templates = request.getfixturevalue("templates")
    return templates.get(name, target, make, base)


def make_settings(
    target: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    own_place: bool = False,
    template: Template | None = None,
) -> Iterator[Settings]:
    """An empty warehouse of the target, or a copy of template; own_place: in tmp_path with
    dbt's folders (for a test that reads them all), not at a reused place of the pool."""
    snapshot_root = tmp_path / "snapshots"
    if own_place:
        folder, place = tmp_path, None
    else:
        root = request.getfixturevalue("tmp_path_factory").getbasetemp()
        while True:
            place = _take_place(target)
            folder = root / "warehouses" / f"{target}-{place}"
            folder.mkdir(parents=True, exist_ok=True)
            _empty_but_dbt_parse(folder)
            if target != "duckdb" or not _still_open(folder / "warehouse.duckdb"):
                break
            # left taken for good; the next place is tried
    try:
        if target == "duckdb":
            made = Settings(
                target="duckdb",
                duckdb_path=folder / "warehouse.duckdb",
                snapshot_root=snapshot_root,
            )
            if template is not None:
                template.clone(made)
            yield made
            return
        base = request.getfixturevalue("pg_base_dsn")
        name = None if place is None else f"eoy_test_{_SESSION}_{place}"
        dsn = create_pg_database(base, name, template)
        try:
            yield Settings(
                target="postgres",
                pg_dsn=dsn,
                snapshot_root=snapshot_root,
                duckdb_path=folder / "unused.duckdb",
            )
        finally:
            drop_pg_database(base, dsn)
    finally:
        if place is not None:
            if target == "duckdb":
                close_dbt_duckdb()
            _PLACES_IN_USE.discard((target, place))


def made_once(
    target: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    name: str,
    make: Callable[[Settings], None],
) -> Iterator[Settings]:
    """A warehouse and its snapshots as `make` left them (e.g. a reset run), made once per
    session and target and copied for each test.

    The ledger names each snapshot by its path, so the copies keep the template's snapshot
    root: one folder per shape and target in this process's base temp, filled afresh with
    the template's snapshots for each test (a process runs one test at a time)."""
    base = request.getfixturevalue("tmp_path_factory").getbasetemp()
    root = base / "made-once" / f"{name}-{target}" / "snapshots"
    saved = root.parent / "saved"

    def made(settings: Settings) -> None:
        shutil.rmtree(root, ignore_errors=True)
        make(replace(settings, snapshot_root=root))
        shutil.rmtree(saved, ignore_errors=True)
        if root.exists():
            root.rename(saved)

    template = template_of(request, name, target, made)
    for settings in make_settings(target, tmp_path, request, template=template):
        shutil.rmtree(root, ignore_errors=True)
        if saved.exists():
            shutil.copytree(saved, root, symlinks=True)
        yield replace(settings, snapshot_root=root)


# the bucket of each scenario made by made_once_in_bucket in this process, and its state once
# made, by (scenario, target)
_BUCKETS: dict[tuple[str, str], tuple[str, bytes]] = {}


def made_once_in_bucket(
    target: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    name: str,
    make: Callable[[Settings], None],
    **changes: Any,
) -> Iterator[Settings]:
    """A warehouse and its snapshots in an Object Lock bucket as `make` left them (it gets
    the settings with the bucket as their root, and `changes`, the AWS variables set), made
    once per session and target, then copied for each test: the warehouse by template; the
    bucket, which the ledger names, put back as `make` left it (moto's server runs in this
    process: ThrowawayS3.saved_bucket)."""
    server: ThrowawayS3 = request.getfixturevalue("s3_server")

    def made(settings: Settings) -> None:
        bucket = server.make_bucket(object_lock=True)
        with aws_env(server.env()):
            make(replace(settings, snapshot_root=f"s3://{bucket}/snapshots", **changes))
        _BUCKETS[(name, target)] = (bucket, server.saved_bucket(bucket))

    template = template_of(request, name, target, made)
    for settings in make_settings(target, tmp_path, request, template=template):
        bucket, saved = _BUCKETS[(name, target)]
        server.restore_bucket(bucket, saved)
        with aws_env(server.env()):
            yield replace(settings, snapshot_root=f"s3://{bucket}/snapshots", **changes)


@pytest.fixture(params=TARGETS)
def target(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(target: str, tmp_path, request: pytest.FixtureRequest) -> Iterator[Settings]:
    """Settings for an empty warehouse of each target: not yet initialised, unless the test
    takes `wh` too (then a copy of the session's initialised template, which `wh` opens)."""
    template = None
    if "wh" in request.fixturenames:
        template = template_of(request, "initialised", target, initialised)
    yield from make_settings(target, tmp_path, request, template=template)


@pytest.fixture
def wh(settings: Settings) -> Iterator[Warehouse]:
    """An initialised, empty warehouse of each target: init ran on the template it copies,
    or runs here when a module's own settings fixture made an empty one."""
    w = connect(settings, create=True, require_init=False)
    if not w.schema_exists("app"):
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


@pytest.fixture(scope="session")
def run_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder every xdist worker of this run shares (the run's base temp)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture
def pg_server_wide(run_root: Path) -> Iterator[None]:
    """Held by a test that changes what the whole PostgreSQL server shares, not one database
    (the roles of `init --roles`, pg_hba.conf): no other such test runs meanwhile on
    another xdist worker."""
    with file_lock(run_root / "pg-server-wide.lock"):
        yield


# Modules whose tests share a module-scoped warehouse per target, or a scenario of made_once,
# built once: under xdist each (module, target) goes to one worker whole, so it is built once,
# not once per worker. Named by file name, whichever folder of tests/ the module sits in.
MODULE_WAREHOUSES = (
    "test_audit.py",
    "test_crash_matrix.py",
    "test_console.py",
    "test_console_browser.py",
    "test_plan.py",
    "test_query.py",
    "test_runner_property.py",
    "test_schedule.py",
    "test_schedule_property.py",
)


# Tests whose cases copy a warehouse a module-scoped fixture makes on first use (a loaded
# schema, a reference run): the cases of one test and target go to one worker, so it is
# made once per target, not once per worker. By file name, then test name.
SHARED_CASES = {
    "test_vendor_scope.py": {
        "test_each_refusal_is_one_line_and_changes_nothing",
        "test_a_killed_run_is_finished_by_running_again",
    },
}

# Tests of one module that copy the same scenario made once (made_once, or one of its own):
# those of one target go to one worker, which makes it once. By file name, then test name,
# then the scenario's name.
SHARED_SCENARIOS = {
    "test_s3_snapshots.py": {
        "test_a_locked_snapshot_outlives_purge_and_a_direct_delete": "s3_reset",
        "test_share_prints_a_link_that_downloads_the_copy": "s3_reset",
    },
    "test_certificates.py": {
        name: "approved_reset"
        for name in (
            "test_a_certificate_states_the_ledger_and_the_manifests_and_verifies",
            "test_a_changed_byte_another_key_or_another_districts_certificate_fail_in_one_line",
            "test_restore_then_certificate_refuses_and_voids_the_earlier_one",
            "test_a_purge_issues_the_copy_destroyed_certificate",
            "test_the_html_report_links_each_completed_districts_certificate",
        )
    },
    "test_purge.py": {
        name: "purge_reset"
        for name in (
            "test_a_hold_placed_while_the_purge_waits_at_the_prompt_is_kept",
            "test_a_wrong_answer_at_the_terminal_purges_nothing",
            "test_dry_run_lists_and_keeps",
            "test_purge_leaves_a_district_another_process_holds",
            "test_purge_without_yes_or_terminal_is_refused",
            "test_purged_snapshots_are_named_by_status_export_and_report",
        )
    }
    | {
        name: "purge_shared"
        for name in (
            "test_purge_removes_encoded_districts_copies_and_holds_reach_them",
            "test_a_copy_uploaded_after_its_snapshot_was_purged_is_purged_next_time",
        )
    },
}


def work_unit(nodeid: str) -> str:
    """The xdist work unit of a test: its module and target for MODULE_WAREHOUSES, its test
    and target for SHARED_CASES, its scenario and target for SHARED_SCENARIOS, else itself."""
    module, _, rest = nodeid.partition("::")
    name, _, params = rest.partition("[")
    targets = [t for t in ("duckdb", "postgres") if t in params.replace("]", "-").split("-")]
    file = module.rpartition("/")[2]
    if name in SHARED_CASES.get(file, ()):
        return f"{module}::{name}::{','.join(targets)}"
    scenario = SHARED_SCENARIOS.get(file, {}).get(name)
    if scenario:
        return f"{module}::{scenario}::{','.join(targets)}"
    if file not in MODULE_WAREHOUSES:
        return nodeid
    return f"{module}::{','.join(targets)}"


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist load`, but by work_unit, in collection order (the crash matrix first)."""
    from xdist.scheduler import LoadScopeScheduling

    class ByWorkUnit(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    config.option.loadscopereorder = False
    return ByWorkUnit(config, log)


def pytest_collection_finish(session: pytest.Session) -> None:
    # a test renders the report in chromium: when it is missing, its install (half a minute)
    # starts now, beside the other tests, in one worker only (all of them collect everything)
    worker = getattr(session.config, "workerinput", {}).get("workerid", "gw0")
    if worker == "gw0" and any("chromium" in item.fixturenames for item in session.items):
        install_in_background()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # the long crash matrix first, so no worker is left alone with it at the end (a stable
    # sort: every other test keeps its place)
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
