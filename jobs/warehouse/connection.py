"""One way to reach either warehouse: embedded DuckDB or PostgreSQL.

SQL passed here uses `%s` placeholders (DB-API "format" style) on both targets; the DuckDB
side rewrites them to `?`. Errors that an operator can act on become `WarehouseError`,
one sentence long.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pyarrow as pa

from jobs.config import Settings, dsn_parts, redact_dsn, scrub
from jobs.errors import EoyError, first_line

# rows per Arrow record batch read from either warehouse (the batch a stream hands on)
ARROW_BATCH_ROWS = 128_000
# A session holding a lock is never ended by the server for idling: that would release the
# lock while the runner still works under it (the settings this server has; the first is 14+).
KEEP_ALIVE_SQL = (
    "select set_config(name, '0', false) from pg_settings "
    "where name in ('idle_session_timeout', 'idle_in_transaction_session_timeout')"
)
REQUIRED_SCHEMAS = ("app", "eoy_runner")


class WarehouseError(EoyError):
    """The warehouse could not be used; the message says what to do."""


class Warehouse:
    """Base of both targets. Subclasses hold one connection each."""

    target: str
    settings: Settings

    # -- statements -----------------------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] | None = None) -> int:
        raise NotImplementedError

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def query_dicts(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        raise NotImplementedError

    def scalar(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        rows = self.query(sql, params)
        return rows[0][0] if rows else None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """begin, the block, commit; rolled back when the block raises."""
        self.begin()
        try:
            yield
        except BaseException:
            self.rollback()
            raise
        self.commit()

    # one transaction step by step, for a caller that must tell a failed COMMIT apart
    def begin(self) -> None:
        raise NotImplementedError

    def commit(self) -> None:
        raise NotImplementedError

    def rollback(self) -> None:
        raise NotImplementedError

    def alive(self) -> bool:
        """Whether the connection can still be used (a broken one is replaced)."""
        return True

    # -- arrow ----------------------------------------------------------------------------
    def arrow(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        return self.record_batches(sql, params).read_all()

    def record_batches(
        self, sql: str, params: Sequence[Any] | None = None, batch_rows: int = ARROW_BATCH_ROWS
    ) -> pa.RecordBatchReader:
        raise NotImplementedError

    def load_arrow(self, schema: str, table: str, data: pa.Table | pa.RecordBatchReader) -> int:
        """Append Arrow data to an existing table, in bulk. Returns rows loaded."""
        raise NotImplementedError

    # -- catalog --------------------------------------------------------------------------
    def schema_exists(self, schema: str) -> bool:
        return bool(
            self.scalar(
                "select count(*) from information_schema.schemata where schema_name = %s",
                [schema],
            )
        )

    def relation_exists(self, schema: str, name: str) -> bool:
        return bool(
            self.scalar(
                "select count(*) from information_schema.tables "
                "where table_schema = %s and table_name = %s",
                [schema, name],
            )
        )

    def require_initialised(self) -> None:
        # a vendor's project has its own schemas; eoy-reset made only eoy_runner there
        required = REQUIRED_SCHEMAS[1:] if self.settings.is_vendor_project else REQUIRED_SCHEMAS
        missing = [s for s in required if not self.schema_exists(s)]
        if missing:
            raise WarehouseError(
                f"warehouse {self.settings.describe()} was never initialised "
                f"(schema {missing[0]} is missing): run `eoy-reset init` first"
            )

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------------------
# DuckDB
# ---------------------------------------------------------------------------------------
_PLACEHOLDER = re.compile(r"%s|%%")


def _duckdb_sql(sql: str) -> str:
    return _PLACEHOLDER.sub(lambda m: "?" if m.group(0) == "%s" else "%", sql)


class DuckDBWarehouse(Warehouse):
    target = "duckdb"

    def __init__(self, settings: Settings, create: bool = False, read_only: bool = False):
        import duckdb

        self.settings = settings
        path = Path(settings.duckdb_path)
        if not path.exists() and not create:
            raise WarehouseError(
                f"warehouse {settings.describe()} was never initialised "
                "(no such file): run `eoy-reset init` first"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            msg = first_line(exc)
            if "lock" in msg.lower():
                pid = re.search(r"PID (\d+)", str(exc))
                holder = f" (process {pid.group(1)})" if pid else ""
                raise WarehouseError(
                    f"the DuckDB warehouse {path} is in use by another process{holder}: "
                    "DuckDB allows one process at a time, wait for it to finish and retry"
                ) from None
            raise WarehouseError(f"cannot open DuckDB warehouse {path}: {msg}") from None
        self._in_tx = False

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> int:
        cur = self.con.execute(_duckdb_sql(sql), list(params) if params is not None else None)
        try:
            row = cur.fetchone()
        except Exception:  # statements without a result set
            return -1
        # DML returns one row with the affected count
        return int(row[0]) if row and isinstance(row[0], int) else -1

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        return self.con.execute(
            _duckdb_sql(sql), list(params) if params is not None else None
        ).fetchall()

    def query_dicts(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        cur = self.con.execute(_duckdb_sql(sql), list(params) if params is not None else None)
        names = [d[0] for d in cur.description or []]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self._in_tx:
            yield
            return
        with super().transaction():
            yield

    def begin(self) -> None:
        self.con.execute("begin transaction")
        self._in_tx = True

    def commit(self) -> None:
        self._in_tx = False
        self.con.execute("commit")

    def rollback(self) -> None:
        self._in_tx = False
        self.con.execute("rollback")

    def record_batches(
        self, sql: str, params: Sequence[Any] | None = None, batch_rows: int = ARROW_BATCH_ROWS
    ) -> pa.RecordBatchReader:
        rel = self.con.sql(_duckdb_sql(sql), params=list(params) if params is not None else None)
        return rel.to_arrow_reader(batch_rows)

    def load_arrow(self, schema: str, table: str, data: pa.Table | pa.RecordBatchReader) -> int:
        self.con.register("_eoy_load", data)
        try:
            cols = ", ".join(f'"{n}"' for n in data.schema.names)
            before = self.scalar(f'select count(*) from "{schema}"."{table}"')
            self.con.execute(
                f'insert into "{schema}"."{table}" ({cols}) select {cols} from _eoy_load'
            )
            after = self.scalar(f'select count(*) from "{schema}"."{table}"')
        finally:
            self.con.unregister("_eoy_load")
        return int(after) - int(before)

    def close(self) -> None:
        self.con.close()


# ---------------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------------
class PostgresWarehouse(Warehouse):
    target = "postgres"

    def __init__(self, settings: Settings):
        import psycopg

        self.settings = settings
        self.dsn = settings.pg_dsn or ""
        dsn_parts(self.dsn)  # a DSN psycopg cannot parse is refused without being echoed
        try:
            self.con = psycopg.connect(self.dsn, autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as exc:
            raise WarehouseError(
                f"cannot reach PostgreSQL at {redact_dsn(self.dsn)}: {_pg_said(exc, self.dsn)}"
            ) from None
        except psycopg.ProgrammingError as exc:
            raise WarehouseError(
                f"bad PostgreSQL DSN {redact_dsn(self.dsn)}: {_pg_said(exc, self.dsn)}"
            ) from None
        self._adbc: Any = None

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> int:
        with self._allowed(), self.con.cursor() as cur:
            cur.execute(sql, params)
            return cur.rowcount

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        with self._allowed(), self.con.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())

    def query_dicts(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        from psycopg.rows import dict_row

        with self._allowed(), self.con.cursor(row_factory=dict_row) as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())

    @contextmanager
    def _allowed(self) -> Iterator[None]:
        """A statement the connected role may not run: which role, and which roles may."""
        import psycopg

        try:
            yield
        except psycopg.errors.InsufficientPrivilege as exc:
            user = self.con.info.user
            raise WarehouseError(
                f"{_pg_said(exc, self.dsn)} (role {user}): with the roles of `eoy-reset init "
                "--roles`, the operator connects as eoy_runner, the CSM as eoy_csm and the "
                "analyst as eoy_analyst (query, report)"
            ) from None

    def schema_exists(self, schema: str) -> bool:
        # the catalog, not information_schema: that shows only the schemas the role may use,
        # and a role without rights on one must not be told to run `init`
        return bool(self.scalar("select count(*) from pg_namespace where nspname = %s", [schema]))

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.con.transaction():
            yield

    def alive(self) -> bool:
        """Asked of an idle connection (between districts): the driver learns that the
        server ended its session only when it next uses it, so the server is asked."""
        import psycopg

        if self.con.closed or self.con.broken:
            return False
        try:
            self.con.execute("select 1")
        except psycopg.Error:
            return False
        return True

    def adbc(self) -> Any:
        """A second connection, ADBC, for streaming Arrow in and out (COPY underneath). It is
        also the connection that deletes, so the runner holds its districts' locks on it
        (`session`); the server must not end it for being idle while it holds them."""
        if self._adbc is None:
            import adbc_driver_postgresql.dbapi as adbc

            try:
                con = adbc.connect(self.dsn)
                with con.cursor() as cur:
                    cur.execute(KEEP_ALIVE_SQL)
                    cur.fetchall()
                con.commit()
            except Exception as exc:
                raise WarehouseError(
                    f"cannot reach PostgreSQL at {redact_dsn(self.dsn)}: {_pg_said(exc, self.dsn)}"
                ) from None
            self._adbc = con
        return self._adbc

    def session(self) -> AdbcSession:
        """The ADBC connection as a warehouse of its own: the session that deletes."""
        return AdbcSession(self)

    def drop_adbc(self) -> None:
        """Forget a broken ADBC connection; the next adbc() opens a new one."""
        if self._adbc is not None:
            with suppress(Exception):
                self._adbc.close()
            self._adbc = None

    def record_batches(
        self, sql: str, params: Sequence[Any] | None = None, batch_rows: int = ARROW_BATCH_ROWS
    ) -> pa.RecordBatchReader:
        con = self.adbc()
        cur = con.cursor()
        cur.adbc_statement.set_options(
            **{"adbc.postgresql.batch_size_hint_bytes": str(16 * 1024 * 1024)}
        )
        cur.execute(_pg_positional(sql), params)
        return cur.fetch_record_batch()

    def load_arrow(self, schema: str, table: str, data: pa.Table | pa.RecordBatchReader) -> int:
        con = self.adbc()
        with con.cursor() as cur:
            n = cur.adbc_ingest(table, data, mode="append", db_schema_name=schema)
        con.commit()
        return int(n)

    def close(self) -> None:
        self.drop_adbc()
        self.con.close()


class AdbcSession(Warehouse):
    """Statements on a PostgreSQL warehouse's ADBC connection: the deletes that stream their
    rows, the ledger writes that must commit with them, and the locks that guard them (a
    session's advisory lock guards only what that session does)."""

    target = "postgres"

    def __init__(self, owner: PostgresWarehouse):
        self.owner = owner
        self.settings = owner.settings

    @property
    def con(self) -> Any:
        return self.owner.adbc()

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> int:
        with self.con.cursor() as cur:
            cur.execute(_pg_positional(sql), params)
            return int(cur.rowcount)

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        with self.con.cursor() as cur:
            cur.execute(_pg_positional(sql), params)
            return [tuple(r) for r in cur.fetchall()]

    def query_dicts(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        with self.con.cursor() as cur:
            cur.execute(_pg_positional(sql), params)
            names = [d[0] for d in cur.description or []]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def statement_rows(self, sql: str) -> Iterator[pa.RecordBatch]:
        """A statement's rows, streamed as Arrow record batches (no parameters: a literal
        lets ADBC stream the result through COPY)."""
        with self.con.cursor() as cur:
            cur.adbc_statement.set_options(
                **{"adbc.postgresql.batch_size_hint_bytes": str(16 * 1024 * 1024)}
            )
            cur.execute(sql)
            yield from cur.fetch_record_batch()

    def begin(self) -> None:
        return None  # ADBC begins a transaction with the first statement after a commit

    def commit(self) -> None:
        try:
            self.con.commit()
        except BaseException:
            self.owner.drop_adbc()  # whatever the server did, this connection is done
            raise

    def rollback(self) -> None:
        try:
            self.con.rollback()
        except Exception:
            self.owner.drop_adbc()  # a broken connection: the next pass opens a new one

    def alive(self) -> bool:
        return self.owner._adbc is not None

    def close(self) -> None:
        return None  # the owner closes it


def _pg_said(exc: BaseException, dsn: str) -> str:
    """libpq's first line, without the DSN's password (a server may quote what it got)."""
    return scrub(first_line(exc), dsn)


def _pg_positional(sql: str) -> str:
    """ADBC's PostgreSQL driver takes $1, $2 … rather than %s."""
    counter = iter(range(1, 10_000))
    return _PLACEHOLDER.sub(lambda m: f"${next(counter)}" if m.group(0) == "%s" else "%", sql)


def connect(settings: Settings, *, create: bool = False, require_init: bool = True) -> Warehouse:
    """Open the warehouse the settings name; by default insist it was initialised."""
    wh: Warehouse
    if settings.target == "duckdb":
        wh = DuckDBWarehouse(settings, create=create)
    else:
        wh = PostgresWarehouse(settings)
    if require_init:
        try:
            wh.require_initialised()
        except BaseException:
            wh.close()
            raise
    return wh


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
