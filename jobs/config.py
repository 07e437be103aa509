"""Settings shared by every command: which warehouse, where snapshots live (SPEC §2, §8)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from jobs.errors import EoyError

TARGETS = ("duckdb", "postgres")
DEFAULT_DUCKDB_PATH = ".eoy/warehouse.duckdb"
DEFAULT_SNAPSHOT_ROOT = "snapshots"

# The dbt project is the repo root; jobs/ sits directly inside it.
PROJECT_DIR = Path(__file__).resolve().parent.parent


class ConfigError(EoyError):
    """Bad settings or input, said in one sentence for the operator."""


@dataclass(frozen=True)
class Settings:
    target: str = "duckdb"
    duckdb_path: Path = Path(DEFAULT_DUCKDB_PATH)
    pg_dsn: str | None = None
    snapshot_root: Path = Path(DEFAULT_SNAPSHOT_ROOT)

    @classmethod
    def from_env(
        cls,
        target: str | None = None,
        duckdb_path: str | Path | None = None,
        pg_dsn: str | None = None,
        snapshot_root: str | Path | None = None,
    ) -> Settings:
        """Options win over environment variables, which win over defaults."""
        target = (target or os.environ.get("EOY_TARGET") or "duckdb").strip().lower()
        if target not in TARGETS:
            raise ConfigError(
                f"unknown target {target!r}: use one of {', '.join(TARGETS)} "
                "(--target or EOY_TARGET)"
            )
        duckdb_path = duckdb_path or os.environ.get("EOY_DUCKDB_PATH") or DEFAULT_DUCKDB_PATH
        pg_dsn = pg_dsn or os.environ.get("EOY_PG_DSN") or None
        snapshot_root = (
            snapshot_root or os.environ.get("EOY_SNAPSHOT_ROOT") or DEFAULT_SNAPSHOT_ROOT
        )
        if target == "postgres" and not pg_dsn:
            raise ConfigError(
                "target postgres needs a server: set EOY_PG_DSN or pass --pg-dsn "
                "(postgresql://user:pw@host:port/db)"
            )
        return cls(
            target=target,
            duckdb_path=Path(duckdb_path),
            pg_dsn=pg_dsn,
            snapshot_root=Path(snapshot_root),
        )

    def with_target(self, target: str) -> Settings:
        return replace(self, target=target)

    def dbt_env(self) -> dict[str, str]:
        """The environment profiles.yml reads, so dbt sees the warehouse the runner sees."""
        env = {"EOY_DUCKDB_PATH": str(self.duckdb_path.resolve())}
        if self.pg_dsn:
            env["EOY_PG_DSN"] = self.pg_dsn
        return env

    def describe(self) -> str:
        """Where the warehouse is, without credentials (safe for logs and manifests)."""
        if self.target == "duckdb":
            return f"duckdb:{self.duckdb_path}"
        return f"postgres:{redact_dsn(self.pg_dsn or '')}"


def redact_dsn(dsn: str) -> str:
    """postgresql://user:secret@host/db -> postgresql://user:***@host/db"""
    head, sep, tail = dsn.partition("://")
    if not sep or "@" not in tail:
        return dsn
    creds, _, rest = tail.rpartition("@")
    user = creds.split(":", 1)[0]
    shown = f"{user}:***" if ":" in creds else user
    return f"{head}://{shown}@{rest}"
