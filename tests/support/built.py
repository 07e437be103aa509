"""Warehouses built once per session (per xdist worker) and cloned for each test.

A template is a warehouse of one shape (initialised; or with data loaded and models built)
made once by its `make` function. A test gets a copy of it at its own place: on PostgreSQL
`create database … template …` (the template has no connection open: every connection of
the process to it is closed once it is made, and none is opened again), on DuckDB a copy of
the file. What a test does to its copy never reaches the template or another test.
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from jobs.config import Settings
from jobs.warehouse.connection import connect
from jobs.warehouse.schema import init_warehouse
from tests.support.in_process import close_dbt_duckdb


def with_dbname(dsn: str, dbname: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


def database_of(dsn: str) -> str:
    return urlsplit(dsn).path.lstrip("/")


def admin(base_dsn: str, sql: str) -> None:
    with psycopg.connect(base_dsn, autocommit=True) as con:
        con.execute(sql)


def initialised(settings: Settings) -> None:
    """The shape of the `wh` fixture: `init` done, nothing in it."""
    with connect(settings, create=True, require_init=False) as wh:
        init_warehouse(wh)


@dataclass
class Template:
    """One shape of warehouse on one target, made on first use in `folder`."""

    name: str
    target: str
    make: Callable[[Settings], None]
    folder: Path
    base_dsn: str | None = None
    _made: Settings | None = field(default=None, init=False)

    def settings(self) -> Settings:
        """The template's own settings, made on first call."""
        if self._made is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            if self.target == "postgres":
                assert self.base_dsn, "a PostgreSQL template needs the server's DSN"
                dbname = f"eoy_tmpl_{self.name}_{uuid.uuid4().hex[:10]}"
                admin(self.base_dsn, f"create database {dbname}")
                made = Settings(
                    target="postgres",
                    pg_dsn=with_dbname(self.base_dsn, dbname),
                    snapshot_root=self.folder / "snapshots",
                    duckdb_path=self.folder / "unused.duckdb",
                )
            else:
                made = Settings(
                    target="duckdb",
                    duckdb_path=self.folder / "warehouse.duckdb",
                    snapshot_root=self.folder / "snapshots",
                )
            self.make(made)
            # dbt-duckdb keeps its last database open in the process; the file is copied
            # whole only once nothing holds it
            close_dbt_duckdb()
            self._made = made
        return self._made

    def clone(self, settings: Settings) -> None:
        """Make the warehouse of settings (its DuckDB file, or its database, which must not
        exist yet) a copy of the template."""
        made = self.settings()
        if self.target == "postgres":
            assert self.base_dsn and made.pg_dsn and settings.pg_dsn
            source = database_of(made.pg_dsn)
            # a backend that has not quite gone yet would make the copy fail
            admin(
                self.base_dsn,
                "select pg_terminate_backend(pid) from pg_stat_activity "
                f"where datname = '{source}' and pid <> pg_backend_pid()",
            )
            copy = database_of(settings.pg_dsn)
            admin(self.base_dsn, f"create database {copy} template {source}")
            return
        path = Path(settings.duckdb_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.with_name(path.name + ".wal").unlink(missing_ok=True)
        shutil.copyfile(Path(made.duckdb_path), path)

    def drop(self) -> None:
        """Drop a PostgreSQL template (a throwaway server stopped already took it along)."""
        if self._made is not None and self.target == "postgres" and self.base_dsn:
            assert self._made.pg_dsn
            with contextlib.suppress(psycopg.OperationalError):
                admin(
                    self.base_dsn,
                    f"drop database if exists {database_of(self._made.pg_dsn)} with (force)",
                )
        self._made = None


class Templates:
    """The templates of a session (per xdist worker), by (shape name, target)."""

    def __init__(self, root: Path):
        self.root = root
        self.made: dict[tuple[str, str], Template] = {}

    def get(
        self, name: str, target: str, make: Callable[[Settings], None], base_dsn: str | None
    ) -> Template:
        """The template of that shape and target (base_dsn: the PostgreSQL server's)."""
        key = (name, target)
        if key not in self.made:
            folder = self.root / f"{name}-{target}"
            self.made[key] = Template(name, target, make, folder, base_dsn)
        return self.made[key]

    def drop_all(self) -> None:
        for template in self.made.values():
            template.drop()
