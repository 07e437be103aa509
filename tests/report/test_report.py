"""`eoy-reset report --html`: one self-contained HTML file, rendered by headless Chromium
without console errors, every section and chart present, hostile ids escaped."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from jobs.config import Settings
from jobs.report.html import QUERIES, SECTIONS, render_report, write_report
from jobs.warehouse.connection import Warehouse
from tests.support.audit_scenario import AS_OF, OVERDUE, script_reset
from tests.support.chromium import CHROMIUM, installed

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--enable-logging=stderr",
    "--v=0",
]


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's chromium (the session began installing it if it was missing); a failed
    install fails the test."""
    problem = installed()
    if problem is not None:
        pytest.fail(problem)
    return CHROMIUM


def render(chromium: Path, html: Path, tmp: Path, *mode: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(chromium), *CHROMIUM_FLAGS, f"--user-data-dir={tmp}", *mode, html.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_report_renders_in_chromium(
    settings: Settings, wh: Warehouse, chromium: Path, tmp_path: Path
) -> None:
    script_reset(wh)
    html = tmp_path / "out" / "report.html"
    written = write_report(settings, html, AS_OF)

    assert written["path"] == str(html) and written["sections"] == list(SECTIONS.values())
    assert written["charts"] == 3
    counts = written["counts"]
    assert (counts["districts"], counts["completed"], counts["overdue_or_blocked"]) == (7, 1, 4)
    assert (counts["rows_deleted"], counts["retention_violations"]) == (14, 0)

    text = html.read_text(encoding="utf-8")
    # self-contained: nothing to fetch, no script; the hostile district id is only text
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text)
    assert "<script" not in text.lower() and "@import" not in text
    assert "d&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&amp;&quot;o" in text
    assert OVERDUE not in text

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / ("report.png" if settings.target == "duckdb" else "report-postgres.png")
    shot.unlink(missing_ok=True)
    done = render(
        chromium, html, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,2400"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.stat().st_size > 20_000  # a blank page is a few kB

    dom = render(chromium, html, tmp_path / "profile", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []
    for title in SECTIONS.values():
        assert f">{title}</h2>" in dom.stdout, title
    assert dom.stdout.count("<svg") == 3
    assert "<script" not in dom.stdout.lower()
    assert "No district is overdue" not in dom.stdout  # the overdue table has rows


def test_report_of_nothing_says_so() -> None:
    data: dict[str, list[dict[str, Any]]] = {name: [] for name in QUERIES}
    text, counts = render_report(data, AS_OF, 2023, "duckdb:x")
    assert "<svg" not in text and set(counts.values()) == {0}
    assert "No district has a reset date this school year." in text
    assert "All well: no student data" in text
    for title in SECTIONS.values():
        assert f">{title}</h2>" in text


def test_report_refuses_a_year_without_policy(
    settings: Settings, wh: Warehouse, tmp_path: Path
) -> None:
    from jobs.plan.dbt import PolicyError

    with pytest.raises(PolicyError, match="no reset policy for school year 2031"):
        write_report(settings, tmp_path / "r.html", AS_OF.replace(year=2031))
    assert not (tmp_path / "r.html").exists()


def test_report_into_a_folder_is_one_clear_error(settings: Settings, tmp_path: Path) -> None:
    from jobs.report.html import ReportError

    with pytest.raises(ReportError, match="is a folder") as err:
        write_report(settings, tmp_path, AS_OF)
    assert "\n" not in str(err.value)
