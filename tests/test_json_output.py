"""One convention for every --json (issue #16, item 4): `ok` first, absolute paths, ISO 8601
timestamps with an offset, the same `totals` keys, the same per-district keys in `run` and
its dry run, and `{"ok": false, "error": ...}` on failure."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from jobs.config import Settings
from jobs.output import RUN_DISTRICT_KEYS
from tests import operator_data as od
from tests.operator_data import eoy, one_line

STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?\+00:00$")
TOTALS = {"districts", "rows"}


def conventions(value: Any, key: str = "") -> None:
    """Every timestamp with an offset, every path absolute, anywhere in the document."""
    if isinstance(value, dict):
        for k, v in value.items():
            conventions(v, k)
    elif isinstance(value, list):
        for v in value:
            conventions(v, key)
    elif isinstance(value, str) and value:
        if key.endswith("_at"):
            assert STAMP.match(value), (key, value)
        if key in ("path", "parts") or key.endswith("_path"):
            assert Path(value).is_absolute(), (key, value)
        if key == "warehouse" and value.startswith("duckdb:"):
            assert Path(value.removeprefix("duckdb:")).is_absolute(), value


def document(settings: Settings, args: list[str], cwd: Path | None = None) -> dict[str, Any]:
    proc = eoy(settings, [*args, "--json"], **({"cwd": cwd} if cwd else {}))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert next(iter(doc)) == "ok" and doc["ok"] is True
    conventions(doc)
    return doc


def test_every_report_follows_the_convention(settings: Settings, tmp_path: Path) -> None:
    od.fresh(settings)
    plan = document(settings, ["plan", "--as-of", "2023-07-28"])
    dry = document(settings, ["run", "--as-of", "2023-07-28", "--dry-run"])
    run = document(settings, ["run", "--as-of", "2023-07-28", "--yes"])
    status = document(settings, ["status"])
    purge = document(settings, ["purge-snapshots", "--older-than", "0", "--dry-run"])
    for doc in (plan, dry, run, status, purge):
        assert set(doc["totals"]) >= TOTALS, doc["totals"]
    for doc in (dry, run, status, purge):
        assert sum(doc["totals"]["by_status"].values()) == len(
            doc.get("districts") or doc["snapshots"]
        )

    # what the plan would delete is what the dry run would, and then what the run did
    assert plan["totals"]["districts"] == dry["totals"]["districts"] == 2
    assert plan["totals"]["rows"] == dry["totals"]["rows"] == run["totals"]["rows"] > 0
    assert run["totals"]["rows"] == status["totals"]["rows"]
    assert dry["totals"]["by_status"] == {"would_run": 2}
    assert run["totals"]["by_status"] == status["totals"]["by_status"] == {"completed": 2}
    assert purge["totals"]["by_status"] == {"would_purge": 2}

    for doc in (dry, run):
        for d in doc["districts"]:
            assert tuple(d) == RUN_DISTRICT_KEYS
    done = {d["district_id"]: d for d in run["districts"]}
    would = {d["district_id"]: d for d in dry["districts"]}
    for district, d in done.items():
        assert d["rows"] == would[district]["rows"]
        assert d["effective_reset_date"] == would[district]["effective_reset_date"]
        assert d["rows_deleted"] == d["rows_total"] == would[district]["rows_total"]
        assert Path(d["snapshot_path"]).is_dir()
    for d in status["districts"]:
        assert STAMP.match(d["started_at"]) and STAMP.match(d["finished_at"])

    copy = document(
        settings,
        ["export", "--district", "early", "--school-year", "2023", "--out", "copies"],
        cwd=tmp_path,
    )
    assert Path(copy["path"]) == tmp_path / "copies" / "early_2023_csv.zip"
    assert Path(copy["path"]).is_file()


def test_failures_answer_in_json_too(settings: Settings, tmp_path: Path) -> None:
    never = eoy(settings, ["status", "--json"])
    line = one_line(never, "never initialised")
    doc = json.loads(never.stdout)
    assert doc == {"ok": False, "error": line.removeprefix("eoy-reset: ")}

    od.fresh(settings)
    for args in (
        ["plan", "--as-of", "2023-02-30", "--json"],
        ["run", "--as-of", "2023-07-28", "--json"],  # no --plan, --yes, nor a terminal
        ["plan", "--json"],  # a usage error: --as-of is missing
    ):
        proc = eoy(settings, args)
        line = one_line(proc)
        assert json.loads(proc.stdout) == {"ok": False, "error": line.removeprefix("eoy-reset: ")}

    # a run that reports and fails: its document, with ok false and the error
    proc = eoy(settings, ["run", "--as-of", "2023-07-28", "--district", "later", "--yes", "--json"])
    line = one_line(proc, "later", "not due until 2023-08-15")
    doc = json.loads(proc.stdout)
    assert doc["ok"] is False and doc["error"] == line.removeprefix("eoy-reset: ")
    assert doc["not_due"] == [{"district_id": "later", "reason": "not due until 2023-08-15"}]
