"""Purging asks first and says what went: a list, --dry-run, a typed confirmation or --yes,
and status, export and the report say when a snapshot was purged (issue #16, item 2). It
misses no copy (an encoded district id's, one a late `share` left) and never races a hold or
another process on the district (issue 28, point 5)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from jobs.config import Settings
from jobs.snapshot.layout import district_dir
from jobs.snapshot.store import COPY, open_store
from jobs.warehouse.connection import connect
from tests.conftest import made_once, made_once_in_bucket
from tests.support import operator_data as od
from tests.support.operator_data import eoy, one_line
from tests.support.runner_helpers import small_district
from tests.support.s3_server import ThrowawayS3

RESET = ("default", "early")


@pytest.fixture
def reset(target: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Settings]:
    """Districts early and default reset on 2023-07-28, their snapshots on disk (made once,
    copied)."""
    yield from made_once(target, tmp_path, request, "purge_reset", od.reset_early_and_default)


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


# ---------------------------------------------------------------------------------------
# purge misses no copy, and never races a hold (issue 28, point 5)
# ---------------------------------------------------------------------------------------
ODD = "dé/1 ü"  # an id the snapshot layout must encode: its folder is `~<base32>`


def versions_under(server: ThrowawayS3, location: str) -> list[str]:
    parts = urlsplit(location)
    listed = server.client().list_object_versions(Bucket=parts.netloc, Prefix=parts.path[1:])
    return sorted(v["Key"] for v in listed.get("Versions", []) + listed.get("DeleteMarkers", []))


def odd_reset_and_shared(s3: Settings) -> None:
    od.fresh(s3)
    with connect(s3) as wh:
        small_district(wh, ODD)
    done = eoy(s3, ["run", "--as-of", "2023-07-28", "--yes"], EOY_RETENTION_DAYS="0")
    assert done.returncode == 0, done.stderr
    for district in ("early", ODD):
        share = ["share", "--district", district, "--school-year", "2023"]
        assert eoy(s3, share).returncode == 0


@pytest.fixture
def shared(target: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Settings]:
    """`early`, `default` and ODD reset into a bucket (no Object Lock retention: only holds
    keep a snapshot), `early`'s and ODD's copies shared (made once, copied)."""
    yield from made_once_in_bucket(
        target, tmp_path, request, "purge_shared", odd_reset_and_shared, retention_days=0
    )


@pytest.mark.s3
def test_purge_removes_encoded_districts_copies_and_holds_reach_them(
    shared: Settings, s3_server: ThrowawayS3
) -> None:
    store = open_store(shared)
    copy = store.location(od.YEAR, ODD, COPY)
    assert copy.rsplit("/", 1)[1].startswith("~") and store.copies() == sorted(
        [copy, store.location(od.YEAR, "early", COPY)]
    )
    [zip_name] = store.files(copy)  # type: ignore[attr-defined]

    assert eoy(shared, ["hold", "--district", ODD]).returncode == 0
    assert store.lock_of(f"{copy}/{zip_name}")["legal_hold"] == "ON"  # type: ignore[attr-defined]
    held = json.loads(
        eoy(shared, ["purge-snapshots", "--older-than", "0", "--yes", "--json"]).stdout
    )
    assert [e["district_id"] for e in held["held"]] == [ODD]
    assert store.copies() == [copy]  # early's went with its snapshot; ODD's is held

    assert eoy(shared, ["release", "--district", ODD]).returncode == 0
    gone = json.loads(
        eoy(shared, ["purge-snapshots", "--older-than", "0", "--yes", "--json"]).stdout
    )
    assert [e["district_id"] for e in gone["purged"]] == [ODD]
    assert store.snapshots() == [] and store.copies() == []
    assert versions_under(s3_server, copy) == []


@pytest.mark.s3
def test_a_copy_uploaded_after_its_snapshot_was_purged_is_purged_next_time(
    shared: Settings, keys: Any, tmp_path: Path
) -> None:
    store = open_store(shared)
    main = store.location(od.YEAR, "early")
    [zip_name] = store.files(store.location(od.YEAR, "early", COPY))  # type: ignore[attr-defined]
    first = eoy(shared, ["purge-snapshots", "--older-than", "0", "--yes", "--json"])
    assert first.returncode == 0, first.stderr
    assert store.copies() == []
    # what a `share` that was uploading while the purge ran leaves behind
    late = tmp_path / zip_name
    late.write_bytes(b"PK\x05\x06" + bytes(18))
    store.put_copy(main, late)
    assert store.copies() == [store.location(od.YEAR, "early", COPY)]

    second = eoy(
        shared,
        ["purge-snapshots", "--older-than", "0", "--yes", "--json"],
        EOY_SIGNING_KEY=str(keys.private_key),
    )
    doc = json.loads(second.stdout)
    assert [(e["district_id"], e["part"]) for e in doc["purged"]] == [("early", COPY)]
    assert store.copies() == []
    [cert] = doc["certificates"]
    with connect(shared) as wh:
        [body] = [r[0] for r in wh.query(
            "select document from eoy_runner.certificates where document_sha256 = %s",
            [cert["document_sha256"]],
        )]  # fmt: skip
    [copy] = json.loads(body)["shared_copies"]
    assert copy["location"].endswith(f"/early~copy/{zip_name}") and copy["removed_at"]


@pytest.fixture
def keys(tmp_path: Path) -> Any:
    from jobs.snapshot.signing import generate_keypair

    return generate_keypair(tmp_path / "keys")


def test_a_hold_placed_while_the_purge_waits_at_the_prompt_is_kept(reset: Settings) -> None:
    from jobs.snapshot.retention import purge_snapshots, set_hold

    def hold_early_meanwhile(going: list[dict[str, Any]]) -> None:
        assert sorted(e["district_id"] for e in going) == list(RESET)
        set_hold(reset, "early", True, reason="litigation")

    doc = purge_snapshots(reset, older_than_days=0, confirm=hold_early_meanwhile)
    assert [e["district_id"] for e in doc["purged"]] == ["default"]
    assert [e["district_id"] for e in doc["held"]] == ["early"]
    assert snapshots_left(reset) == ["early"]


@pytest.mark.parametrize(
    "target", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_purge_leaves_a_district_another_process_holds(
    reset: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import jobs.snapshot.retention
    from jobs.snapshot.retention import purge_snapshots
    from jobs.warehouse.locks import release_district_lock, try_district_lock

    monkeypatch.setattr(jobs.snapshot.retention, "LOCK_WAIT_SECONDS", 0.5)
    with connect(reset) as other:
        assert try_district_lock(other, "early", od.YEAR)  # a run or restore of early
        doc = purge_snapshots(reset, older_than_days=0)
        assert [e["district_id"] for e in doc["busy"]] == ["early"]
        assert [e["district_id"] for e in doc["purged"]] == ["default"]
        assert snapshots_left(reset) == ["early"]
        release_district_lock(other, "early", od.YEAR)
    again = purge_snapshots(reset, older_than_days=0)
    assert [e["district_id"] for e in again["purged"]] == ["early"]
