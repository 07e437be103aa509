"""dbt reads exactly the warehouse the runner reads (issue #11, item 3): the DSN is split
once, by psycopg, into the EOY_PG_* variables profiles.yml reads; whatever its form, dbt
builds `due_districts` in the database the runner deletes from, and nowhere else.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from jobs.config import ConfigError, Settings
from tests.conftest import with_dbname
from tests.support.crash_helpers import fresh, run_cli

PASSWORD = "p@ss w/rd%'\"x"  # every character a URL must encode, and both quotes


def pg_env(dsn: str) -> dict[str, str]:
    env = Settings(target="postgres", pg_dsn=dsn).dbt_env()
    return {k: v for k, v in env.items() if k.startswith("EOY_PG_")}


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        (
            f"postgresql://eoy:{quote(PASSWORD, safe='')}@db.example:5433/warehouse",
            ("db.example", "5433", "eoy", PASSWORD, "warehouse", "prefer"),
        ),
        (
            "postgresql://eoy@/warehouse?host=db.example&port=6543&sslmode=require&password=pw",
            ("db.example", "6543", "eoy", "pw", "warehouse", "require"),
        ),
        (
            "postgres://eoy:pw@[::1]:5433/warehouse?sslmode=verify-full",
            ("::1", "5433", "eoy", "pw", "warehouse", "verify-full"),
        ),
        (
            make_conninfo(
                "", host="db.example", dbname="ware house", user="eoy", password=PASSWORD
            ),
            ("db.example", "5432", "eoy", PASSWORD, "ware house", "prefer"),
        ),
        (
            "postgresql://eoy@db.example/one?dbname=two",  # libpq: the query wins
            ("db.example", "5432", "eoy", "", "two", "prefer"),
        ),
    ],
)
def test_the_dsn_is_split_as_libpq_reads_it(
    dsn: str, expected: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGSSLMODE"):
        monkeypatch.delenv(name, raising=False)
    names = ("HOST", "PORT", "USER", "PASSWORD", "DBNAME", "SSLMODE")
    assert pg_env(dsn) == {f"EOY_PG_{n}": v for n, v in zip(names, expected, strict=True)}


def test_dsns_dbt_cannot_follow_are_refused_in_one_line() -> None:
    for dsn in ["postgresql://eoy@h1:5432,h2:5433/warehouse", "hostaddr=10.0.0.1 dbname=w"]:
        with pytest.raises(ConfigError) as err:
            Settings(target="postgres", pg_dsn=dsn).dbt_env()
        assert "\n" not in str(err.value)


def test_the_profile_reads_only_the_split_variables() -> None:
    profile = (Path(__file__).resolve().parents[2] / "profiles.yml").read_text()
    assert "env_var('EOY_PG_DSN'" not in profile and "modules.re" not in profile
    for name in ("HOST", "PORT", "USER", "PASSWORD", "DBNAME", "SSLMODE"):
        assert f"env_var('EOY_PG_{name}'" in profile


# ---------------------------------------------------------------------------------------
# on the test server: a role whose password must be sent right
# ---------------------------------------------------------------------------------------
@pytest.fixture
def password_role(settings: Settings, pg_server_wide: None) -> Iterator[str]:
    """A superuser role that only logs in with PASSWORD (scram), whatever the server's default.

    The test server trusts everyone; a line at the top of pg_hba.conf makes this role's
    password count, so a DSN sent with the wrong password fails instead of passing anyway.
    """
    role = f"eoy_pw_{uuid.uuid4().hex[:8]}"
    admin = settings.pg_dsn or ""
    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(
            sql.SQL("create role {} login superuser password {}").format(
                sql.Identifier(role), sql.Literal(PASSWORD)
            )
        )
        hba = Path(str(con.execute("show hba_file").fetchone()[0]))  # type: ignore[index]
    try:
        rules = hba.read_text()
        hba.write_text(
            f"local all {role} scram-sha-256\nhost all {role} all scram-sha-256\n{rules}"
        )
    except OSError:
        with psycopg.connect(admin, autocommit=True) as con:
            con.execute(sql.SQL("drop role {}").format(sql.Identifier(role)))
        pytest.skip("pg_hba.conf of this server is not writable: the password cannot be checked")
    try:
        with psycopg.connect(admin, autocommit=True) as con:
            con.execute("select pg_reload_conf()")
        yield role
    finally:
        hba.write_text(rules)
        with psycopg.connect(admin, autocommit=True) as con:
            con.execute("select pg_reload_conf()")
            con.execute(sql.SQL("drop owned by {}").format(sql.Identifier(role)))
            con.execute(sql.SQL("drop role {}").format(sql.Identifier(role)))


def has_due_districts(dsn: str) -> bool:
    with psycopg.connect(dsn, autocommit=True) as con:
        return bool(
            con.execute(
                "select count(*) from information_schema.tables "
                "where table_schema = 'eoy' and table_name = 'due_districts'"
            ).fetchone()[0]  # type: ignore[index]
        )


@pytest.mark.parametrize("form", ["url", "keyword"])
@pytest.mark.parametrize(
    "target", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_dbt_builds_in_the_database_the_runner_reads(
    settings: Settings, password_role: str, form: str
) -> None:
    fresh(settings)
    parts = conninfo_to_dict(settings.pg_dsn or "")
    if form == "url":
        dsn = (
            f"postgresql://{password_role}:{quote(PASSWORD, safe='')}@{parts['host']}:"
            f"{parts['port']}/{parts['dbname']}"
        )
    else:
        dsn = make_conninfo("", **{**parts, "user": password_role, "password": PASSWORD})
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(make_conninfo(dsn, password="wrong")).close()

    as_role = Settings(**{**settings.__dict__, "pg_dsn": dsn})
    done = run_cli(as_role, ["plan", "--as-of", "2023-07-28", "--json"])
    assert done.returncode == 0, done.stderr
    due = sorted(d["district_id"] for d in json.loads(done.stdout)["due"])
    assert due, "no district due: the plan proves nothing"

    # built where the runner reads, with the rows the plan reports; not in the server's default
    with psycopg.connect(settings.pg_dsn or "", autocommit=True) as con:
        built = sorted(r[0] for r in con.execute("select district_id from eoy.due_districts"))
    assert built == due
    assert not has_due_districts(with_dbname(settings.pg_dsn or "", "postgres"))
