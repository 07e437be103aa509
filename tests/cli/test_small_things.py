"""Small things an operator trips on (issue #16, item 6): --version, usage errors in one line
with the fix, impossible days, school years, snapshot folders, help texts, the report's
days past, and export keeping an existing copy."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from jobs import __version__
from jobs.config import Settings
from tests.support import operator_data as od
from tests.support.operator_data import eoy, one_line


@pytest.fixture
def loaded(settings: Settings) -> Settings:
    od.fresh(settings)
    return settings


@pytest.mark.parametrize("target", ["duckdb"], indirect=True)
def test_version(settings: Settings) -> None:
    proc = eoy(settings, ["--version"])
    assert proc.returncode == 0 and proc.stdout.strip() == f"eoy-reset {__version__}"


@pytest.mark.parametrize("target", ["duckdb"], indirect=True)
@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["status", "--school-year", "2022-23"], ["use 2023", "the year the school year ends"]),
        (["plan", "--as-of", "2023-07-28", "--school-year", "2022-23"], ["use 2023"]),
        (["status", "--school-year", "next"], ["'next' is not a year", "like 2023"]),
        (["status", "--duckdb-path", "w.duckdb"], ["put it before the command"]),
        (["plan", "--as-of", "2023-07-28", "--target", "duckdb"], ["put it before the command"]),
        (["plan", "--as-of", "2023-02-30"], ["no such day", "YYYY-MM-DD"]),
        (["plan"], ["Missing option '--as-of'", "eoy-reset plan --help"]),
        (["stauts"], ["No such command", "eoy-reset --help"]),
        (["status", "--verbose"], ["no option --verbose", "eoy-reset status --help"]),
    ],
)
def test_usage_errors_are_one_line_with_the_fix(
    settings: Settings, args: list[str], needles: list[str]
) -> None:
    one_line(eoy(settings, args), *needles)


def test_unknown_school_years_are_refused_by_status_and_report(
    loaded: Settings, tmp_path: Path
) -> None:
    one_line(eoy(loaded, ["status", "--school-year", "23"]), "school year 23", "2022-23 is 2023")
    one_line(
        eoy(loaded, ["report", "--html", str(tmp_path / "r.html"), "--school-year", "23"]),
        "school year 23",
    )
    assert not (tmp_path / "r.html").exists()
    assert eoy(loaded, ["status", "--school-year", "2024"]).returncode == 0


def test_verify_snapshot_of_a_folder_without_manifest(loaded: Settings, tmp_path: Path) -> None:
    one_line(eoy(loaded, ["verify-snapshot", str(tmp_path)]), "not a snapshot folder")
    one_line(eoy(loaded, ["verify-snapshot", str(tmp_path / "none")]), "is not a folder")


@pytest.mark.parametrize("target", ["duckdb"], indirect=True)
def test_help_texts_match_the_options(settings: Settings) -> None:
    for command in ("plan", "run", "status", "report", "export", "purge-snapshots"):
        proc = eoy(settings, [command, "--help"], COLUMNS="200")
        assert proc.returncode == 0
        # every option the help mentions is one the command has (`other-command --x` aside)
        text = re.sub(r"`[^`]*`", "", proc.stdout)
        options = set(re.findall(r"--[a-z][a-z-]+", text))
        for option in options - {"--help"}:
            bad = eoy(settings, [command, option, "--help"], COLUMNS="200")
            assert "No such option" not in bad.stderr and "no option" not in bad.stderr, (
                command,
                option,
            )


def test_report_school_year_defaults_like_status_and_days_to_come(
    loaded: Settings, tmp_path: Path
) -> None:
    html = tmp_path / "r.html"
    # nothing in the ledger: the year of --as-of; the blocked district's day is tomorrow
    proc = eoy(loaded, ["report", "--html", str(html), "--as-of", "2023-07-27", "--json"])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["school_year"] == 2023
    text = html.read_text()
    assert ">in 1 day<" in text and ">-1<" not in text
    run = eoy(loaded, ["run", "--as-of", "2023-07-28", "--yes"])
    assert run.returncode == 0, run.stderr
    # a day of the next year: the latest school year in the ledger, as status shows
    status = json.loads(eoy(loaded, ["status", "--json"]).stdout)
    report = eoy(loaded, ["report", "--html", str(html), "--as-of", "2024-01-15", "--json"])
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["school_year"] == status["school_year"] == 2023


def test_export_keeps_an_existing_copy_without_force(loaded: Settings, tmp_path: Path) -> None:
    args = ["export", "--district", "early", "--school-year", "2023", "--out", str(tmp_path)]
    first = eoy(loaded, [*args, "--json"])
    assert first.returncode == 0, first.stderr
    copy = Path(json.loads(first.stdout)["path"])
    copy.write_bytes(b"the district's own file")
    one_line(eoy(loaded, args), "exists already", "--force")
    assert copy.read_bytes() == b"the district's own file"
    assert eoy(loaded, [*args, "--force"]).returncode == 0
    assert copy.read_bytes() != b"the district's own file"
