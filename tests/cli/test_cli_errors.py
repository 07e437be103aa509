"""Bad input gets one line on stderr naming what is wrong, a non-zero exit, no traceback,
and changes nothing (issue: reliability and security, item 4)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jobs.config import Settings


def eoy(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("EOY_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "jobs", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=120,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode != 0, proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("eoy-reset: "), lines[0]
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def global_args(settings: Settings) -> list[str]:
    args = ["--target", settings.target, "--snapshot-root", str(settings.snapshot_root)]
    if settings.target == "duckdb":
        args += ["--duckdb-path", str(settings.duckdb_path)]
    else:
        args += ["--pg-dsn", settings.pg_dsn or ""]
    return args


def test_unknown_target(tmp_path: Path) -> None:
    assert_one_line_error(
        eoy("--target", "oracle", "init", cwd=tmp_path), "unknown target", "oracle"
    )


def test_unknown_target_from_env(tmp_path: Path) -> None:
    proc = eoy("init", env={"EOY_TARGET": "sqlite"}, cwd=tmp_path)
    assert_one_line_error(proc, "unknown target", "EOY_TARGET")


def test_postgres_without_dsn(tmp_path: Path) -> None:
    assert_one_line_error(eoy("--target", "postgres", "init", cwd=tmp_path), "EOY_PG_DSN")


def test_unreachable_server(tmp_path: Path) -> None:
    proc = eoy(
        "--target",
        "postgres",
        "--pg-dsn",
        "postgresql://u:secret@127.0.0.1:1/x",
        "init",
        cwd=tmp_path,
    )
    assert_one_line_error(proc, "cannot reach PostgreSQL")
    assert "secret" not in proc.stderr


def test_never_initialised(settings: Settings, tmp_path: Path) -> None:
    proc = eoy(*global_args(settings), "status", cwd=tmp_path)
    assert_one_line_error(proc, "never initialised", "eoy-reset init")
    if settings.target == "duckdb":
        assert not settings.duckdb_path.exists(), "a failed command must not create a warehouse"


@pytest.mark.parametrize("bad", ["2023-02-30", "2023-13-01", "yesterday", "28/07/2023", ""])
def test_impossible_dates(tmp_path: Path, bad: str) -> None:
    db = tmp_path / "w.duckdb"
    assert eoy("--duckdb-path", str(db), "init", cwd=tmp_path).returncode == 0
    proc = eoy("--duckdb-path", str(db), "plan", "--as-of", bad, cwd=tmp_path)
    assert_one_line_error(proc, "--as-of", "YYYY-MM-DD")


def test_roles_need_postgres(tmp_path: Path) -> None:
    proc = eoy("--duckdb-path", str(tmp_path / "w.duckdb"), "init", "--roles", cwd=tmp_path)
    assert_one_line_error(proc, "--roles", "postgres")


def test_usage_errors_exit_non_zero(tmp_path: Path) -> None:
    proc = eoy("generate", "--districts", "0", "--seed", "1", cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr


def test_help_explains_every_command(tmp_path: Path) -> None:
    proc = eoy("--help", cwd=tmp_path)
    assert proc.returncode == 0
    for command in (
        "init",
        "generate",
        "plan",
        "approve",
        "run",
        "status",
        "verify-snapshot",
        "resume-syncs",
        "restore",
        "export",
        "purge-snapshots",
        "hold",
        "release",
        "report",
        "demo",
    ):
        assert command in proc.stdout
