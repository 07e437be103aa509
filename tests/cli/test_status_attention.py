"""`status` names what needs someone (issue: what a newcomer trips over, item 6): after a run
that refused a district, the refused, failed, blocked and not-started districts and the legal
holds are in its text at 80 columns and in its JSON, not only "N completed"."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from jobs.config import Settings
from jobs.warehouse.connection import connect
from jobs.warehouse.ledger import fail_run, start_run
from tests.support import operator_data as od
from tests.support.operator_data import eoy
from tests.support.runner_helpers import insert


def test_status_names_every_district_that_needs_attention(
    settings: Settings, tmp_path: Path
) -> None:
    od.fresh(settings)  # early and default due, blocked, later due 2023-08-15
    plan = tmp_path / "plan.json"
    assert eoy(settings, ["plan", "--as-of", "2023-07-28", "--out", str(plan)]).returncode == 0
    assert eoy(settings, ["approve", str(plan)]).returncode == 0
    with connect(settings) as wh:  # default's rows grow by half after the plan
        t = "2022-09-02 08:00:00"
        for i in range(4):
            insert(
                wh, "usage_sessions", [(f"late{i}", "default", "default-s0", "imagine_math", t, 3)]
            )
        start_run(wh, "other", 2023, date(2023, 7, 28), None)  # a run that failed
        fail_run(wh, "other", 2023, "export", "the snapshot root is full")
    ran = eoy(settings, ["run", "--as-of", "2023-07-28", "--plan", str(plan)])
    assert ran.returncode == 1 and "'default' refused" in ran.stderr, ran.stderr
    assert eoy(settings, ["hold", "--district", "early", "--reason", "litigation"]).returncode == 0

    shown = eoy(settings, ["status"], COLUMNS="80")
    assert shown.returncode == 0, shown.stderr
    # every line fits, but a snapshot's path, which is never cut
    assert all(len(ln) <= 80 for ln in shown.stdout.splitlines() if "snapshots/" not in ln)
    rows = {
        cells[0]: cells[1]
        for line in shown.stdout.splitlines()
        if line.startswith("│ ") and (cells := [c.strip() for c in line.split("│")[1:-1]])[0]
    }
    assert rows["default"] == "refused" and rows["blocked"] == "blocked", rows
    assert rows["later"] == "not started" and rows["other"] == "failed", rows
    text = " ".join(shown.stdout.split())
    assert "Needs attention: 1 failed, 1 refused, 1 blocked, 1 not started" in text
    assert "rows moved" in text and "a CSM must act" in text and "due since 2023-08-15" in text
    assert "Under legal hold (purge-snapshots keeps their snapshots): early (litigation)." in text

    doc = json.loads(eoy(settings, ["status", "--json"]).stdout)
    assert [(e["district_id"], e["status"]) for e in doc["attention"]] == [
        ("other", "failed"),
        ("default", "refused"),
        ("blocked", "blocked"),
        ("later", "not_started"),
    ]
    assert [h["district_id"] for h in doc["legal_holds"]] == ["early"]
    # once the refused district's reset completes, it needs nothing more
    assert (
        eoy(settings, ["run", "--as-of", "2023-07-28", "--district", "default", "--yes"]).returncode
        == 0
    )
    doc = json.loads(eoy(settings, ["status", "--json"]).stdout)
    assert "default" not in {e["district_id"] for e in doc["attention"]}
