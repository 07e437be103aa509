"""`resume-syncs` never turns a district's imports back on while a reset of it is unfinished
(issue #11, item 1): only the district's latest reset counts, and it must be completed with
the school year after it rostered.
"""

from __future__ import annotations

import json
from datetime import datetime

from jobs.config import Settings
from jobs.snapshot.layout import district_dir
from jobs.warehouse.connection import connect
from tests.support.crash_helpers import fresh, run_cli

NEXT_YEAR_RUN = ["run", "--as-of", "2024-07-31", "--school-year", "2024", "--yes", "--json"]


def syncs_of(settings: Settings, district: str) -> set[str]:
    with connect(settings) as wh:
        rows = wh.query("select status from app.import_syncs where district_id = %s", [district])
    return {r[0] for r in rows}


def rostered(settings: Settings, district: str, school_year: int) -> None:
    with connect(settings) as wh:
        wh.execute(
            "insert into app.rostering_runs (district_id, school_year, completed_at) "
            "values (%s, %s, %s)",
            [district, school_year, datetime(school_year - 1, 8, 20, 6, 0)],
        )


def resume(settings: Settings) -> dict:
    done = run_cli(settings, ["resume-syncs", "--json"])
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_an_unfinished_reset_keeps_the_syncs_paused(settings: Settings) -> None:
    fresh(settings)
    first = run_cli(settings)
    assert first.returncode == 0, first.stderr
    done = sorted(d["district_id"] for d in json.loads(first.stdout)["districts"])
    assert len(done) >= 2, "the calendar mix should reset at least two districts in 2023"
    district, other = done[:2]

    # 2023 completed, 2024 rostered: the syncs come back on
    rostered(settings, district, 2024)
    doc = resume(settings)
    assert doc["resumed"] == [district]
    assert syncs_of(settings, district) == {"active"}
    waiting = {w["district_id"]: w for w in doc["waiting"]}
    assert "rostering" in waiting[other]["why"]
    assert district not in waiting

    # the 2024 reset pauses the syncs and is killed: it is still running in the ledger
    killed = run_cli(
        settings, [*NEXT_YEAR_RUN, "--district", district], EOY_FAULT="after:pause_syncs"
    )
    assert killed.returncode == -9, killed.stderr
    assert syncs_of(settings, district) == {"paused"}
    doc = resume(settings)
    assert district not in doc["resumed"]
    assert syncs_of(settings, district) == {"paused"}, "resumed while its 2024 reset runs"
    why = {w["district_id"]: w["why"] for w in doc["waiting"]}[district]
    assert "2024" in why and "running" in why

    # the rerun fails (the school year's snapshot folder is a file): failed keeps them paused
    blocker = district_dir(settings.snapshot_root, 2024, district).parent
    blocker.write_text("not a folder")
    failed = run_cli(settings, [*NEXT_YEAR_RUN, "--district", district])
    assert failed.returncode != 0
    with connect(settings) as wh:
        status = wh.scalar(
            "select status from eoy_runner.reset_runs where district_id = %s and school_year = %s",
            [district, 2024],
        )
    assert status == "failed"
    done_text = run_cli(settings, ["resume-syncs"])
    assert done_text.returncode == 0, done_text.stderr
    assert district in done_text.stdout and "failed" in done_text.stdout
    assert syncs_of(settings, district) == {"paused"}, "resumed after its 2024 reset failed"

    # finished and rostered for 2025: back on
    blocker.unlink()
    again = run_cli(settings, [*NEXT_YEAR_RUN, "--district", district])
    assert again.returncode == 0, again.stderr
    doc = resume(settings)
    assert district not in doc["resumed"]
    assert "rostering" in {w["district_id"]: w["why"] for w in doc["waiting"]}[district]
    rostered(settings, district, 2025)
    assert resume(settings)["resumed"] == [district]
    assert syncs_of(settings, district) == {"active"}
