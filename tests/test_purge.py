"""Purging asks first and says what went: a list, --dry-run, a typed confirmation or --yes,
and status, export and the report say when a snapshot was purged (issue #16, item 2)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from jobs.config import Settings
from jobs.snapshot.layout import district_dir
from tests import operator_data as od
from tests.operator_data import eoy, one_line

RESET = ("default", "early")


@pytest.fixture
def reset(settings: Settings) -> Settings:
    """Districts early and default reset on 2023-07-28, their snapshots on disk."""
    od.fresh(settings)
    done = eoy(settings, ["run", "--as-of", "2023-07-28", "--yes"])
    assert done.returncode == 0, done.stderr
    return settings


def snapshots_left(settings: Settings) -> list[str]:
    return [d for d in RESET if district_dir(settings.snapshot_root, od.YEAR, d).is_dir()]


def test_purge_without_yes_or_terminal_is_refused(reset: Settings) -> None:
    proc = eoy(reset, ["purge-snapshots", "--older-than", "0"])
    one_line(proc, "--yes", "--dry-run")
    assert snapshots_left(reset) == list(RESET)


def test_dry_run_lists_and_keeps(reset: Settings) -> None:
    proc = eoy(reset, ["purge-snapshots", "--older-than", "0", "--dry-run", "--json"])
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["ok"] is True and doc["dry_run"] is True
    assert sorted(e["district_id"] for e in doc["would_purge"]) == list(RESET)
    assert doc["purged"] == []
    assert doc["totals"]["districts"] == 2 and doc["totals"]["by_status"] == {"would_purge": 2}
    assert doc["totals"]["rows"] == sum(e["rows"] for e in doc["would_purge"]) > 0
    assert all(Path(e["path"]).is_absolute() and Path(e["path"]).is_dir() for e in doc["snapshots"])
    text = eoy(reset, ["purge-snapshots", "--older-than", "0", "--dry-run"], COLUMNS="80")
    assert text.returncode == 0, text.stderr
    assert "early" in text.stdout and "default" in text.stdout and "Dry run" in text.stdout
    assert snapshots_left(reset) == list(RESET)


@pytest.mark.parametrize("target", ["duckdb"], indirect=True)
def test_a_wrong_answer_at_the_terminal_purges_nothing(reset: Settings) -> None:
    proc = eoy(reset, ["purge-snapshots", "--older-than", "0"], answer="yes")
    one_line(proc, "confirmation did not match", "no snapshot was purged")
    assert "early" in proc.stdout and "default" in proc.stdout  # the list came first
    assert snapshots_left(reset) == list(RESET)


def test_purged_snapshots_are_named_by_status_export_and_report(
    reset: Settings, tmp_path: Path
) -> None:
    proc = eoy(reset, ["purge-snapshots", "--older-than", "0"], answer="2")
    assert proc.returncode == 0, proc.stderr
    assert "Type 2 to purge them" in proc.stdout and "Purged 2 snapshot(s)" in proc.stdout
    assert snapshots_left(reset) == []
    today = datetime.now(UTC).date().isoformat()

    status = json.loads(eoy(reset, ["status", "--json"]).stdout)
    for d in status["districts"]:
        assert d["snapshot_purged_at"].startswith(today) and d["snapshot_purged_at"].endswith(
            "+00:00"
        )
    for width in ("80", "160"):
        table = eoy(reset, ["status"], COLUMNS=width)
        assert table.returncode == 0, table.stderr
        assert table.stdout.count(f"purged on {today}") == 2, table.stdout

    out = tmp_path / "copies"
    failed = eoy(
        reset, ["export", "--district", "early", "--school-year", "2023", "--out", str(out)]
    )
    one_line(failed, "purged on " + today, "'early'")

    html = tmp_path / "report.html"
    report = eoy(reset, ["report", "--html", str(html), "--as-of", "2023-07-28"])
    assert report.returncode == 0, report.stderr
    assert html.read_text().count(f"purged on {today}") == 2

    again = eoy(reset, ["purge-snapshots", "--older-than", "0", "--yes", "--json"])
    assert json.loads(again.stdout)["purged"] == []
