"""One convention for every --json (issue #16, item 4): `ok` first, absolute paths, ISO 8601
timestamps with an offset, the same `totals` keys, the same per-district keys in `run` and
its dry run, and `{"ok": false, "error": ...}` on failure."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from jobs.config import Settings
from jobs.reset.result import RUN_DISTRICT_KEYS
from tests.support import operator_data as od
from tests.support.operator_data import eoy, one_line

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
        if key == "path" or key.endswith("_path"):
            assert Path(value).is_absolute(), (key, value)
        if key == "parts" and "/" in value:  # an export's parts are places; a run's are names
            assert Path(value).is_absolute() or "://" in value, (key, value)
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


# ---------------------------------------------------------------------------------------
# the golden documents: what every reporting command prints, kept as it is
# ---------------------------------------------------------------------------------------
GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "json_documents.json"
SHA256 = re.compile(r"^[0-9a-f]{64}$")
# keys whose values change from one run to the next: times, durations
VOLATILE_KEYS = ("seconds", "seconds_by_phase")


def stable(value: Any, places: dict[str, str], key: str = "") -> Any:
    """The document without what changes between runs of the same commands: timestamps and
    durations as placeholders, the test's own folders and warehouse by name, and the sha256
    of a manifest (it holds the time it was made)."""
    if key in VOLATILE_KEYS and isinstance(value, dict):
        return {k: "<seconds>" for k in value}
    if isinstance(value, dict):
        return {k: stable(v, places, k) for k, v in value.items()}
    if isinstance(value, list):
        return [stable(v, places, key) for v in value]
    if value is None or isinstance(value, bool):
        return value
    if key in VOLATILE_KEYS:
        return "<seconds>"
    if key.endswith("_at") or key in ("finished", "started", "created"):
        return "<time>"
    if isinstance(value, str):
        if key.endswith("sha256") and SHA256.match(value):
            return "<sha256>"
        for where, name in places.items():
            value = value.replace(where, name)
        return STAMP_ANYWHERE.sub("<time>", value)
    return value


STAMP_ANYWHERE = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(\+00:00| UTC)?")


def golden_documents(settings: Settings, tmp_path: Path) -> dict[str, Any]:
    """Every reporting command's document on the operator's small districts, in the order an
    operator would run them."""
    od.fresh(settings)
    docs: dict[str, Any] = {}

    def take(name: str, args: list[str], ok: bool = True, cwd: Path | None = None) -> Any:
        proc = eoy(settings, [*args, "--json"], **({"cwd": cwd} if cwd else {}))
        assert (proc.returncode == 0) is ok, proc.stderr
        docs[name] = json.loads(proc.stdout)
        return docs[name]

    take("plan", ["plan", "--as-of", "2023-07-28"])
    take("run_dry", ["run", "--as-of", "2023-07-28", "--dry-run"])
    take("run_not_due", ["run", "--as-of", "2023-07-28", "--district", "later", "--yes"], ok=False)
    run = take("run", ["run", "--as-of", "2023-07-28", "--yes"])
    take("run_again", ["run", "--as-of", "2023-07-28", "--yes"])
    take("status", ["status"])
    folder = next(d["snapshot_path"] for d in run["districts"] if d["district_id"] == "early")
    take("verify_snapshot", ["verify-snapshot", folder])
    take("verify_snapshot_against_source", ["verify-snapshot", folder, "--against-source"])
    take(
        "export",
        ["export", "--district", "early", "--school-year", "2023", "--out", "copies"],
        cwd=tmp_path,
    )
    take("purge_dry", ["purge-snapshots", "--older-than", "0", "--dry-run"])
    take("resume_syncs", ["resume-syncs"])
    take("query", ["query", "rows_deleted_per_product"])
    take("restore", ["restore", "--district", "early", "--school-year", "2023"])
    take("status_after_restore", ["status"])
    take("run_restored", ["run", "--as-of", "2023-07-28", "--district", "early", "--yes"])
    return docs


def places_of(settings: Settings, tmp_path: Path) -> dict[str, str]:
    """The test's own places, longest first, and the name each goes by in the golden file."""
    places = {str(tmp_path): "<tmp>", str(settings.snapshot_root): "<snapshots>"}
    if settings.duckdb_path is not None:
        places[str(Path(settings.duckdb_path).parent)] = "<warehouse>"
    if settings.pg_dsn:
        places[settings.describe().removeprefix("postgres:")] = "<warehouse>"
    return dict(sorted(places.items(), key=lambda kv: -len(kv[0])))


def test_documents_stay_as_they_were(settings: Settings, tmp_path: Path) -> None:
    """The documents of plan, run (dry, failing, again, of a restored district), status,
    verify-snapshot, export, purge-snapshots, resume-syncs, query and restore are the golden
    ones; UPDATE_GOLDEN=1 writes what they are now instead."""
    docs = stable(golden_documents(settings, tmp_path), places_of(settings, tmp_path))
    golden = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden[settings.target] = docs
        GOLDEN.write_text(json.dumps(golden, indent=2, sort_keys=True) + "\n")
    assert settings.target in golden, f"no golden documents for {settings.target} yet"
    expected = golden[settings.target]
    assert sorted(docs) == sorted(expected)
    for name in expected:
        assert docs[name] == expected[name], name
