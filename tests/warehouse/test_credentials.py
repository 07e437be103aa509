"""No credential ever leaves the process (issue #11, item 2): whatever form the DSN takes,
the warehouse is described without its password, in every message, file and ledger row.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from jobs.config import PROJECT_DIR, ConfigError, Settings, redact_dsn
from jobs.plan.dbt import dbt_work_dir
from jobs.warehouse.connection import WarehouseError, connect
from tests.support.crash_helpers import run_cli

SECRET = "Zq9-s3cr3t pass'w\"ord"  # spaces and both quotes: the keyword form must quote it

# every form psycopg accepts, with what the description must say
FORMS = [
    (
        "postgresql://eoy:Zq9-s3cr3t@db.example:5433/warehouse",
        "host=db.example port=5433 dbname=warehouse user=eoy",
        ["Zq9-s3cr3t"],
    ),
    (
        "postgresql://eoy:Zq9%40s3cr%2Ft%20x@db.example/warehouse",
        "host=db.example dbname=warehouse user=eoy",
        ["Zq9@s3cr/t x", "Zq9%40s3cr%2Ft%20x", "s3cr"],
    ),
    (
        "postgresql://eoy@db.example:5433/warehouse?password=Zq9-s3cr3t&sslmode=require",
        "host=db.example port=5433 dbname=warehouse user=eoy sslmode=require",
        ["Zq9-s3cr3t"],
    ),
    (
        "host=db.example port=5433 dbname=warehouse user=eoy password='Zq9 s3cr3t \\' \"x'",
        "host=db.example port=5433 dbname=warehouse user=eoy",
        ["Zq9 s3cr3t", "s3cr3t"],
    ),
    (
        "postgresql://eoy:Zq9-s3cr3t@[::1]:5433/warehouse",
        "host=::1 port=5433 dbname=warehouse user=eoy",
        ["Zq9-s3cr3t"],
    ),
    (
        "postgresql://eoy:Zq9-s3cr3t@db1.example:5433,db2.example:5434/warehouse",
        "host=db1.example,db2.example port=5433,5434 dbname=warehouse user=eoy",
        ["Zq9-s3cr3t"],
    ),
    (
        "postgres://eoy:Zq9-s3cr3t@db.example/warehouse",
        "host=db.example dbname=warehouse user=eoy",
        ["Zq9-s3cr3t"],
    ),
    (
        "host=db.example dbname=warehouse sslpassword=Zq9-s3cr3t passfile=/etc/eoy/pgpass",
        "host=db.example dbname=warehouse",
        ["Zq9-s3cr3t"],
    ),
]


@pytest.mark.parametrize(("dsn", "shown", "secrets"), FORMS)
def test_every_dsn_form_is_described_without_its_password(
    dsn: str, shown: str, secrets: list[str]
) -> None:
    described = Settings(target="postgres", pg_dsn=dsn).describe()
    assert described == f"postgres:{shown}"
    assert redact_dsn(dsn) == shown
    for secret in secrets:
        assert secret not in described


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://eoy:Zq9%zz-s3cr3t@db.example/warehouse",  # bad percent-encoding
        "host=db.example password=Zq9-s3cr3t dbname",  # a keyword without a value
        "host=db.example password='Zq9-s3cr3t",  # an unterminated quote
        "Zq9-s3cr3t",
    ],
)
def test_a_dsn_psycopg_cannot_parse_is_never_echoed(dsn: str, tmp_path: Path) -> None:
    settings = Settings(target="postgres", pg_dsn=dsn, duckdb_path=tmp_path / "w.duckdb")
    assert settings.describe() == "postgres:<unparseable DSN>"
    with pytest.raises(ConfigError) as err:
        Settings.from_env(target="postgres", pg_dsn=dsn)
    assert "s3cr3t" not in str(err.value) and "\n" not in str(err.value)
    with pytest.raises((ConfigError, WarehouseError)) as err2:
        connect(settings)
    assert "s3cr3t" not in str(err2.value)
    with pytest.raises(ConfigError):
        dbt_work_dir(settings)


def test_dbt_work_dir_reads_every_dsn_form(tmp_path: Path) -> None:
    def work(dsn: str) -> str:
        settings = Settings(target="postgres", pg_dsn=dsn, duckdb_path=tmp_path / "w.duckdb")
        return dbt_work_dir(settings).name

    url = work("postgresql://eoy:pw@db.example:5433/warehouse")
    assert url == work("host=db.example port=5433 user=eoy password=other dbname=warehouse")
    assert url == work("postgresql://eoy@db.example:5433/warehouse?password=pw")
    assert work("postgresql://eoy@[::1]:5433/warehouse") != work(
        "postgresql://eoy@h:5433/warehouse"
    )
    assert work("postgresql://eoy@h/one") != work("postgresql://eoy@h/two")
    assert all("pw" not in part for part in url.split("-")[1:])


@pytest.mark.parametrize("target", [pytest.param("postgres", marks=pytest.mark.postgres)])
def test_psycopg_errors_never_carry_the_password(target: str, pg_base_dsn: str) -> None:
    parts = conninfo_to_dict(pg_base_dsn)
    for dsn in [
        make_conninfo("", **{**parts, "port": "1", "password": SECRET}),
        make_conninfo("", **{**parts, "dbname": "no_such_db", "password": SECRET}),
        make_conninfo("", **{**parts, "user": SECRET, "password": SECRET}),
    ]:
        with pytest.raises(WarehouseError) as err:
            connect(Settings(target="postgres", pg_dsn=dsn))
        assert SECRET not in str(err.value)
        assert "\n" not in str(err.value)


# ---------------------------------------------------------------------------------------
# the whole reset, end to end, with a password in the DSN
# ---------------------------------------------------------------------------------------
PASSWORD = "Pw-7f3a9c e2'b\"1"


def everything_written(root: Path) -> dict[str, str]:
    """Text of every file under root (binary files too, as latin-1: a password is bytes)."""
    out = {}
    for path in root.rglob("*"):
        if path.is_file():
            out[str(path)] = path.read_bytes().decode("latin-1")
    return out


def certificate_commands(
    settings: Settings, tmp_path: Path, districts: list[dict[str, object]]
) -> list[str]:
    """keygen, a certificate of each district reset and its check: what they print (the
    private key must never be in it either)."""
    keys = tmp_path / "keys"
    signing = {"EOY_SIGNING_KEY": str(keys / "signing.key")}
    said: list[str] = []
    runs = [["keygen", "--out", str(keys)]]
    for d in districts:
        out = str(tmp_path / "certificates" / str(d["district_id"]))
        runs.append(["certificate", "--district", str(d["district_id"]), "--school-year",
                     "2023", "--out", out, "--json"])  # fmt: skip
        runs.append(["verify-certificate", f"{out}/certificate.json", "--public-key",
                     str(keys / "signing.pub")])  # fmt: skip
    for args in runs:
        done = run_cli(settings, args, **signing)
        assert done.returncode == 0, (args, done.stderr)
        said += [done.stdout, done.stderr]
    private = (keys / "signing.key").read_text().splitlines()[1]
    assert not [text for text in said if private in text], "the private key was printed"
    return said


def ledger_text(dsn: str) -> list[str]:
    with psycopg.connect(dsn, autocommit=True) as con:
        tables = [
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_schema = 'eoy_runner'"
            )
        ]
        texts = []
        for table in tables:
            for row in con.execute(f"select * from eoy_runner.{table}"):
                texts.extend(str(v) for v in row if v is not None)
    return texts


@pytest.mark.parametrize(
    "target", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_a_whole_reset_never_writes_the_password(settings: Settings, tmp_path: Path) -> None:
    base = conninfo_to_dict(settings.pg_dsn or "")
    role = f"eoy_secret_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(settings.pg_dsn or "", autocommit=True) as con:
        con.execute(f"drop role if exists {role}")
        con.execute(
            psycopg.sql.SQL("create role {} login superuser password {}").format(
                psycopg.sql.Identifier(role), psycopg.sql.Literal(PASSWORD)
            )
        )
    try:
        # the URL form, the password percent-encoded (it holds a space and both quotes)
        where = f"{base['host']}:{base['port']}/{base['dbname']}"
        dsn = f"postgresql://{role}:{quote(PASSWORD, safe='')}@{where}"
        secret = Settings(
            target="postgres",
            pg_dsn=dsn,
            snapshot_root=settings.snapshot_root,
            duckdb_path=tmp_path / "unused.duckdb",
        )
        plan_file = tmp_path / "plan.json"
        report = tmp_path / "report.html"
        said: list[str] = []
        for args in [
            ["init"],
            ["generate", "--districts", "4", "--seed", "11", "--students-per-district", "3"],
            ["plan", "--as-of", "2023-07-28", "--json"],
            ["plan", "--as-of", "2023-07-28", "--out", str(plan_file)],
            ["run", "--as-of", "2023-07-28", "--yes", "--json"],
            ["status", "--json"],
            ["resume-syncs", "--json"],
            ["report", "--html", str(report), "--as-of", "2023-07-28"],
        ]:
            done = run_cli(secret, args)
            assert done.returncode == 0, (args, done.stderr)
            said += [done.stdout, done.stderr]
        assert json.loads(said[8])["districts"], "the run reset no district: it proves nothing"
        said += certificate_commands(secret, tmp_path, json.loads(said[8])["districts"])

        # a failing command: the same DSN, the wrong port
        wrong = make_conninfo(dsn, port="1")
        failed = run_cli(Settings(**{**secret.__dict__, "pg_dsn": wrong}), ["status"])
        assert failed.returncode != 0 and "cannot reach PostgreSQL" in failed.stderr
        said += [failed.stdout, failed.stderr]
        # and as an option on the command line
        env = {k: v for k, v in os.environ.items() if not k.startswith("EOY_")}
        flag = subprocess.run(
            [sys.executable, "-m", "jobs", "--target", "postgres", "--pg-dsn", wrong, "status"],
            cwd=PROJECT_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert flag.returncode != 0
        said += [flag.stdout, flag.stderr]

        files = everything_written(settings.snapshot_root)
        files.update(everything_written(tmp_path))
        files.update(everything_written(dbt_work_dir(secret)))
        assert any(name.endswith("manifest.json") for name in files)
        assert any("/logs/" in name for name in files) and any("/target/" in name for name in files)
        texts = {f"output {i}": text for i, text in enumerate(said)}
        texts.update(files)
        texts.update({f"ledger {i}": v for i, v in enumerate(ledger_text(settings.pg_dsn or ""))})
        for where, text in texts.items():
            for piece in (PASSWORD, PASSWORD.split(" ")[0], "e2'b", "e2%27b"):
                assert piece not in text, f"the password is in {where}"
    finally:
        with psycopg.connect(settings.pg_dsn or "", autocommit=True) as con:
            con.execute(f"drop owned by {role}")
            con.execute(f"drop role if exists {role}")


def test_duckdb_settings_ignore_a_dsn(tmp_path: Path) -> None:
    settings = Settings.from_env(target="duckdb", duckdb_path=tmp_path / "w.duckdb", pg_dsn="x")
    assert settings.describe() == f"duckdb:{tmp_path / 'w.duckdb'}"
