"""Settings shared by every command: which warehouse, where snapshots live,
and every other setting the environment gives: no other module reads os.environ.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from jobs.errors import EoyError

TARGETS = ("duckdb", "postgres")
DEFAULT_DUCKDB_PATH = ".eoy/warehouse.duckdb"
DEFAULT_SNAPSHOT_ROOT = "snapshots"
# Object Lock on an s3:// root: objects are retained this many days after their snapshot
# was taken (the default of `purge-snapshots --older-than`), in this mode.
DEFAULT_RETENTION_DAYS = 90
DEFAULT_LOCK_MODE = "COMPLIANCE"

# The dbt project is the repo root; jobs/ sits directly inside it.
PROJECT_DIR = Path(__file__).resolve().parent.parent


class ConfigError(EoyError):
    """Bad settings or input, said in one sentence for the operator."""


@dataclass(frozen=True)
class Settings:
    target: str = "duckdb"
    duckdb_path: Path = Path(DEFAULT_DUCKDB_PATH)
    pg_dsn: str | None = None
    # a folder, or `s3://bucket/prefix` (a str: a URL is not a local path)
    snapshot_root: Path | str = Path(DEFAULT_SNAPSHOT_ROOT)
    object_lock_mode: str = DEFAULT_LOCK_MODE
    retention_days: int = DEFAULT_RETENTION_DAYS
    # the root dbt project: this repo, or a vendor's that installs eoy-reset as a package
    project_dir: Path = PROJECT_DIR

    @classmethod
    def from_env(
        cls,
        target: str | None = None,
        duckdb_path: str | Path | None = None,
        pg_dsn: str | None = None,
        snapshot_root: str | Path | None = None,
        object_lock_mode: str | None = None,
        retention_days: int | None = None,
        project_dir: str | Path | None = None,
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
        root = str(snapshot_root)
        if root.lower().startswith("s3:") and (
            not root.startswith("s3://") or not root[5:].split("/")[0]
        ):
            raise ConfigError(
                f"snapshot root {root!r} is not an object store URL: use s3://bucket/prefix"
            )
        mode = object_lock_mode or os.environ.get("EOY_OBJECT_LOCK_MODE") or DEFAULT_LOCK_MODE
        mode = mode.strip().upper()
        if mode not in ("COMPLIANCE", "GOVERNANCE"):
            raise ConfigError(
                f"unknown Object Lock mode {mode!r}: use COMPLIANCE or GOVERNANCE "
                "(--object-lock-mode or EOY_OBJECT_LOCK_MODE)"
            )
        days_text = os.environ.get("EOY_RETENTION_DAYS")
        try:
            days = int(retention_days if retention_days is not None else days_text or 90)
        except ValueError:
            days = -1
        if days < 0:
            raise ConfigError(
                f"retention days {retention_days if retention_days is not None else days_text!r}"
                " must be a whole number of days, zero or more (--retention-days or "
                "EOY_RETENTION_DAYS)"
            )
        if target == "postgres" and not pg_dsn:
            raise ConfigError(
                "target postgres needs a server: set EOY_PG_DSN or pass --pg-dsn "
                "(postgresql://user:pw@host:port/db)"
            )
        if target == "postgres" and pg_dsn:
            # refuses, without echoing it, a DSN psycopg cannot parse; and remembers the
            # command's password, so its last-resort error line can be scrubbed of it
            _COMMAND_SECRETS.update(_secrets_of(dsn_parts(pg_dsn)))
        project = Path(project_dir or os.environ.get("EOY_PROJECT_DIR") or PROJECT_DIR).resolve()
        if not (project / "dbt_project.yml").is_file():
            raise ConfigError(
                f"{project} is not a dbt project (it has no dbt_project.yml): give --project-dir "
                "or EOY_PROJECT_DIR the folder of the root dbt project"
            )
        return cls(
            target=target,
            duckdb_path=Path(duckdb_path),
            pg_dsn=pg_dsn,
            snapshot_root=root if root.startswith("s3://") else Path(root),
            object_lock_mode=mode,
            retention_days=days,
            project_dir=project,
        )

    @property
    def is_vendor_project(self) -> bool:
        """Whether the root dbt project is another than eoy-reset's own (a vendor's)."""
        return Path(self.project_dir).resolve() != PROJECT_DIR

    def with_target(self, target: str) -> Settings:
        return replace(self, target=target)

    def dbt_env(self) -> dict[str, str]:
        """The environment profiles.yml reads, so dbt sees the warehouse the runner sees.

        The DSN is split here, once, by psycopg, into EOY_PG_HOST, _PORT, _USER, _PASSWORD,
        _DBNAME and _SSLMODE; what it leaves out is taken as libpq takes it (PG* variables,
        then libpq's defaults), so dbt connects where the runner's psycopg connects.
        """
        env = {"EOY_DUCKDB_PATH": str(self.duckdb_path.resolve())}
        if self.pg_dsn:
            env.update(dbt_pg_env(self.pg_dsn))
        return env

    def describe(self) -> str:
        """Where the warehouse is, without credentials (safe for logs and manifests):
        `duckdb:<path>` or `postgres:host=... port=... dbname=... user=...`."""
        if self.target == "duckdb":
            return f"duckdb:{self.duckdb_path}"
        return f"postgres:{redact_dsn(self.pg_dsn or '')}"


# What a description of a PostgreSQL warehouse may show: where it is and who connects.
# A list of what is allowed, not of what is secret, so a credential libpq adds one day
# (password, sslpassword, a passfile's path, ...) stays out without anyone noticing it.
SHOWN_KEYS = ("host", "hostaddr", "port", "dbname", "user", "sslmode")
SECRET_KEYS = ("password", "sslpassword")
UNPARSEABLE = "<unparseable DSN>"
# the password of the DSN the command line was given (Settings.from_env), for scrub()
_COMMAND_SECRETS: set[str] = set()


def dsn_parts(dsn: str) -> dict[str, str]:
    """The DSN's connection parameters (URL or keyword form), as libpq reads them.

    Raises ConfigError, never echoing the DSN: psycopg's own message may quote its text.
    """
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(dsn)
    except ProgrammingError:
        raise ConfigError(
            "the PostgreSQL DSN (EOY_PG_DSN or --pg-dsn) cannot be parsed: use "
            "postgresql://user:pw@host:port/db or host=... port=... dbname=... user=..."
        ) from None
    return {k: str(v) for k, v in parts.items() if v is not None}


def dbt_pg_env(dsn: str) -> dict[str, str]:
    """EOY_PG_* for profiles.yml: the DSN's parameters as libpq reads them, one per variable."""
    import getpass

    parts = dsn_parts(dsn)
    if "," in parts.get("host", "") or "," in parts.get("port", "") or parts.get("hostaddr"):
        raise ConfigError(
            "dbt connects to one host by name: give EOY_PG_DSN (or --pg-dsn) a single host "
            "and no hostaddr, so dbt builds on the server the runner reads"
        )

    def value(key: str, env: str, default: str) -> str:
        return parts.get(key) or os.environ.get(env) or default

    host = value("host", "PGHOST", "")
    if not host:
        raise ConfigError(
            "the PostgreSQL DSN (EOY_PG_DSN or --pg-dsn) names no host: dbt needs one, e.g. "
            "postgresql://user:pw@host:port/db or host=... (a socket folder for a local server)"
        )
    user = value("user", "PGUSER", getpass.getuser())
    return {
        "EOY_PG_HOST": host,
        "EOY_PG_PORT": value("port", "PGPORT", "5432"),
        "EOY_PG_USER": user,
        "EOY_PG_PASSWORD": value("password", "PGPASSWORD", ""),
        "EOY_PG_DBNAME": value("dbname", "PGDATABASE", user),
        "EOY_PG_SSLMODE": value("sslmode", "PGSSLMODE", "prefer"),
    }


def redact_dsn(dsn: str) -> str:
    """The DSN without credentials, in keyword form: host=... port=... dbname=... user=..."""
    from psycopg.conninfo import make_conninfo

    try:
        parts = dsn_parts(dsn)
    except ConfigError:
        return UNPARSEABLE
    return make_conninfo("", **{k: parts[k] for k in SHOWN_KEYS if parts.get(k)})


def _secrets_of(parts: dict[str, str]) -> set[str]:
    return {v for k, v in parts.items() if k in SECRET_KEYS and v}


def scrub(text: str, dsn: str | None = None) -> str:
    """An error message with the passwords of dsn, and of the command's own DSN, masked.

    The last line of defence for messages that come from elsewhere (libpq, ADBC, dbt): a
    server may quote what it was sent, e.g. a role name that is the password by mistake.
    For error lines only: it would garble structured data that happens to hold the text.
    """
    from urllib.parse import quote

    secrets = set(_COMMAND_SECRETS)
    if dsn:
        with contextlib.suppress(ConfigError):
            secrets |= _secrets_of(dsn_parts(dsn))
    for secret in sorted(secrets, key=len, reverse=True):
        # as given, as a URL carries it, as a quoted keyword value carries it
        escaped = secret.replace("\\", "\\\\").replace("'", "\\'")
        for form in sorted({escaped, quote(secret, safe=""), quote(secret), secret}, key=len)[::-1]:
            text = text.replace(form, "***")
    return text


# ---------------------------------------------------------------------------------------
# The other settings of the environment, each read when it is needed (a test, or the web
# console's process, may change one between two commands).
# ---------------------------------------------------------------------------------------
OPERATOR_ENV = "EOY_OPERATOR"
SECOND_PERSON_ENV = "EOY_REQUIRE_SECOND_PERSON"
PLAN_TOLERANCE_ENV = "EOY_PLAN_TOLERANCE"
SIGNING_KEY_ENV = "EOY_SIGNING_KEY"
SMTP_PASSWORD_ENV = "EOY_SMTP_PASSWORD"
NOTICE_FROM_ENV = "EOY_NOTICE_FROM"
WEB_SECRET_ENV = "EOY_WEB_SECRET"
FORWARDED_ALLOW_IPS_ENV = "FORWARDED_ALLOW_IPS"
DBT_ROLE_ENV = "EOY_DBT_ROLE"
DEBUG_ENV = "EOY_DEBUG"
NO_SPINNER_ENV = "EOY_NO_SPINNER"


def _env(name: str) -> str:
    return os.environ.get(name, "")


def operator_setting() -> str:
    """EOY_OPERATOR: who is at the keyboard, as the operator names themself ("" when unset)."""
    return _env(OPERATOR_ENV).strip()


def second_person_setting() -> str:
    """EOY_REQUIRE_SECOND_PERSON as given, lower case ("" when unset)."""
    return _env(SECOND_PERSON_ENV).strip().lower()


def plan_tolerance_set() -> bool:
    """Whether EOY_PLAN_TOLERANCE is set: a run refuses it (the tolerance is the plan's)."""
    return bool(_env(PLAN_TOLERANCE_ENV))


def signing_key_setting() -> str:
    """EOY_SIGNING_KEY: the path of the key that signs certificates ("" when unset)."""
    return _env(SIGNING_KEY_ENV).strip()


def smtp_password() -> str | None:
    """EOY_SMTP_PASSWORD: never an option, a command line is seen by every user."""
    return _env(SMTP_PASSWORD_ENV) or None


def notice_sender() -> str:
    """EOY_NOTICE_FROM: the sender of the districts' notices ("" when unset)."""
    return _env(NOTICE_FROM_ENV).strip()


def web_secret_setting() -> str:
    """EOY_WEB_SECRET: the key of the console's sessions and CSRF tokens ("" when unset)."""
    return _env(WEB_SECRET_ENV)


def forwarded_allow_ips() -> str:
    """The proxies whose X-Forwarded-* headers the console believes (uvicorn's variable)."""
    return os.environ.get(FORWARDED_ALLOW_IPS_ENV, "127.0.0.1")


def dbt_role_set() -> bool:
    """Whether the operator chose dbt's role (EOY_DBT_ROLE) themself."""
    return DBT_ROLE_ENV in os.environ


def debug() -> bool:
    """EOY_DEBUG: an unexpected error shows its traceback instead of one line."""
    return bool(_env(DEBUG_ENV))


def spinner_off() -> bool:
    """EOY_NO_SPINNER: no spinner on stderr, even at a terminal."""
    return bool(_env(NO_SPINNER_ENV))


def fault_switch(name: str) -> str:
    """A test-only fault switch (jobs/faults.py names them) as given ("" when unset)."""
    return _env(name)


def aws_environment(with_home: bool = False) -> tuple[tuple[str, str], ...]:
    """The AWS_* variables as they are now (and HOME, where boto's shared files are): a
    store or client made for them is made again when one changes."""
    return tuple(
        sorted(
            (k, v)
            for k, v in os.environ.items()
            if k.startswith("AWS_") or (with_home and k == "HOME")
        )
    )


def project_variables(names: Iterable[str]) -> dict[str, str | None]:
    """The values of the environment variables a dbt project reads by name (env_var() in
    its files; unset: None), which a parse of it depends on."""
    return {name: os.environ.get(name) for name in sorted(names)}


@contextlib.contextmanager
def process_environment(values: dict[str, str]) -> Iterator[None]:
    """The process's environment with these variables set for a while (dbt's in-process
    runner reads its profile from it), then as it was."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
