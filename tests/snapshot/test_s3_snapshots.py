"""Snapshots in an S3 bucket with Object Lock (moto's S3 server, a real S3 API): the CLI's
purge, holds and links on an s3:// root, the store's faults, a kill mid-upload, and two runner
"hosts" on one PostgreSQL warehouse and one bucket."""

from __future__ import annotations

import io
import json
import threading
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import botocore.exceptions
import pytest

from jobs.config import PROJECT_DIR, Settings
from jobs.snapshot.layout import MANIFEST
from jobs.snapshot.store import S3Store, open_store
from jobs.snapshot.verify import verify_snapshot
from jobs.synthetic.generate import generate_districts
from jobs.warehouse.connection import Warehouse, connect
from jobs.warehouse.contract import DELETED_TABLES, STEPS
from tests.conftest import made_once_in_bucket
from tests.support import fork_server
from tests.support import operator_data as od
from tests.support.crash_helpers import RUN, cli_env
from tests.support.fork_server import Forked
from tests.support.operator_data import eoy, one_line
from tests.support.runner_helpers import dump_app, expected_due, student_rows
from tests.support.s3_server import ThrowawayS3, aws_env, free_port

pytestmark = pytest.mark.s3
RESET = ("default", "early")  # due on 2023-07-28 in the operator's data
RUN_DAY = ["run", "--as-of", "2023-07-28", "--yes", "--json"]


@pytest.fixture
def s3(settings: Settings, s3_root: str) -> Settings:
    """The settings fixture (each target) with its snapshots in a new Object Lock bucket."""
    return replace(settings, snapshot_root=s3_root)


@pytest.fixture
def reset(target: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Settings]:
    """The operator's districts, `early` and `default` reset, their snapshots in an Object
    Lock bucket (made once, copied)."""
    yield from made_once_in_bucket(
        target, tmp_path, request, "s3_reset", od.reset_early_and_default
    )


def bucket_of(settings: Settings) -> str:
    return urlsplit(str(settings.snapshot_root)).netloc


def keys_under(server: ThrowawayS3, location: str) -> list[str]:
    parts = urlsplit(location)
    listed = server.client().list_objects_v2(Bucket=parts.netloc, Prefix=parts.path[1:] + "/")
    return sorted(o["Key"].rsplit("/", 1)[1] for o in listed.get("Contents", []))


def events(settings: Settings, step: str) -> list[tuple[str, str, dict]]:
    with connect(settings) as wh:
        rows = wh.query(
            "select district_id, status, cast(detail as text) from eoy_runner.reset_events "
            "where step = %s order by event_id",
            [step],
        )
    return [(d, s, json.loads(t)) for d, s, t in rows]


# ---------------------------------------------------------------------------------------
# retention enforced by the store
# ---------------------------------------------------------------------------------------
def test_a_locked_snapshot_outlives_purge_and_a_direct_delete(
    reset: Settings, s3_server: ThrowawayS3
) -> None:
    store = open_store(reset)
    assert isinstance(store, S3Store)
    location = store.location(od.YEAR, "early")
    assert keys_under(s3_server, location) == sorted(
        [MANIFEST, *(f"{t}.parquet" for t in DELETED_TABLES)]
    )
    lock = store.lock_of(f"{location}/students.parquet")
    assert lock["mode"] == "COMPLIANCE" and lock["retain_until"] is not None

    # the store itself refuses to delete a locked version, whoever asks
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        s3_server.client().delete_object(
            Bucket=bucket_of(reset),
            Key=urlsplit(location).path[1:] + "/students.parquet",
            VersionId=lock["version_id"],
        )
    assert refused.value.response["Error"]["Code"] == "AccessDenied"

    # the CLI deletes only what the store lets go, and names what it kept
    proc = eoy(reset, ["purge-snapshots", "--older-than", "0", "--yes", "--json"])
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["purged"] == []
    assert sorted(e["district_id"] for e in doc["locked"]) == list(RESET)
    for entry in doc["locked"]:
        assert f"{entry['path']}/{MANIFEST}" in entry["locked"]
        assert len(entry["locked"]) == 1 + len(DELETED_TABLES)
    text = eoy(reset, ["purge-snapshots", "--older-than", "0", "--yes"], COLUMNS="200")
    assert text.stdout.count("Still locked by the object store") == 2, text.stdout
    assert [s for _, s, _ in events(reset, "purge_snapshots")] == ["refused"] * 4
    for district in RESET:
        check = eoy(reset, ["verify-snapshot", store.location(od.YEAR, district)])
        assert check.returncode == 0, check.stderr
        assert "Snapshot verified." in check.stdout
    html = reset.duckdb_path.parent / "report.html"
    assert eoy(reset, ["report", "--html", str(html)]).returncode == 0
    assert "early" in html.read_text()
    status = json.loads(eoy(reset, ["status", "--json"]).stdout)
    assert all(d["snapshot_purged_at"] is None for d in status["districts"])
    assert {d["snapshot_path"] for d in status["districts"]} == {
        store.location(od.YEAR, d) for d in RESET
    }


def test_hold_is_an_s3_legal_hold_and_release_lifts_it(
    settings: Settings, s3_root: str, s3_server: ThrowawayS3
) -> None:
    # no retention: only the legal hold keeps a snapshot
    unlocked = replace(settings, snapshot_root=s3_root, retention_days=0)
    od.fresh(unlocked)
    assert eoy(unlocked, RUN_DAY, EOY_RETENTION_DAYS="0").returncode == 0
    store = open_store(unlocked)
    assert isinstance(store, S3Store)
    early = store.location(od.YEAR, "early")
    assert store.lock_of(f"{early}/{MANIFEST}")["mode"] is None

    held = eoy(unlocked, ["hold", "--district", "early", "--reason", "audit"])
    assert held.returncode == 0, held.stderr
    lock = store.lock_of(f"{early}/{MANIFEST}")
    assert lock["legal_hold"] == "ON"
    with pytest.raises(botocore.exceptions.ClientError):
        s3_server.client().delete_object(
            Bucket=bucket_of(unlocked),
            Key=urlsplit(early).path[1:] + f"/{MANIFEST}",
            VersionId=lock["version_id"],
        )
    purged = json.loads(
        eoy(unlocked, ["purge-snapshots", "--older-than", "0", "--yes", "--json"]).stdout
    )
    assert [e["district_id"] for e in purged["purged"]] == ["default"]
    assert [e["district_id"] for e in purged["held"]] == ["early"]
    assert store.snapshots() == [early]
    assert keys_under(s3_server, store.location(od.YEAR, "default")) == []
    versions = s3_server.client().list_object_versions(
        Bucket=bucket_of(unlocked), Prefix=urlsplit(store.location(od.YEAR, "default")).path[1:]
    )
    assert versions.get("Versions", []) == [] and versions.get("DeleteMarkers", []) == []

    assert eoy(unlocked, ["release", "--district", "early"]).returncode == 0
    assert store.lock_of(f"{early}/{MANIFEST}")["legal_hold"] == "OFF"
    again = json.loads(
        eoy(unlocked, ["purge-snapshots", "--older-than", "0", "--yes", "--json"]).stdout
    )
    assert [e["district_id"] for e in again["purged"]] == ["early"]
    assert store.snapshots() == []
    assert [s for _, s, d in events(unlocked, "hold")] == ["completed"]
    assert events(unlocked, "hold")[0][2]["objects"] == 1 + len(DELETED_TABLES)

    # a district under hold: the snapshot its reset takes is held by the store at once
    assert eoy(unlocked, ["hold", "--district", "later"]).returncode == 0
    late = ["run", "--as-of", "2023-08-15", "--yes", "--json"]
    assert eoy(unlocked, late, EOY_RETENTION_DAYS="0").returncode == 0
    later = store.location(od.YEAR, "later")
    assert store.lock_of(f"{later}/{MANIFEST}")["legal_hold"] == "ON"
    assert store.lock_of(f"{later}/students.parquet")["legal_hold"] == "ON"


# ---------------------------------------------------------------------------------------
# a link for the district
# ---------------------------------------------------------------------------------------
def test_share_prints_a_link_that_downloads_the_copy(reset: Settings) -> None:
    proc = eoy(
        reset,
        ["share", "--district", "early", "--school-year", "2023", "--expires", "2h", "--by", "csm"],
        COLUMNS="200",
    )
    assert proc.returncode == 0, proc.stderr
    link = proc.stdout.strip().splitlines()[-1]
    assert link.startswith("http") and "early" in link
    assert parse_qs(urlsplit(link).query)["X-Amz-Expires"] == ["7200"]
    # plain HTTP, no credentials: the signature is the key
    with urllib.request.urlopen(link, timeout=30) as response:
        body = response.read()
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        assert set(zf.namelist()) == {"README.txt", *(f"{t}.csv" for t in DELETED_TABLES)}
        students = zf.read("students.csv").decode().splitlines()
        assert len(students) == 1 + 2  # header and the district's two students

    shared = events(reset, "share")
    assert len(shared) == 1
    district, status, detail = shared[0]
    assert (district, status, detail["shared_by"], detail["format"]) == (
        "early",
        "completed",
        "csm",
        "csv",
    )
    assert detail["copy"].endswith("/2023/early~copy/early_2023_csv.zip")
    assert detail["expires_at"] > detail["shared_at"]
    with connect(reset) as wh:
        ledger = " ".join(
            str(r[0]) for r in wh.query("select cast(detail as text) from eoy_runner.reset_events")
        )
    assert "X-Amz-Signature" not in ledger and link not in ledger
    # the copy is no snapshot: verify and purge see only the two snapshots
    assert len(open_store(reset).snapshots()) == 2

    # the operator's export reads the same parts from the bucket: the same files
    out = reset.duckdb_path.parent / "exported"
    args = ["export", "--district", "early", "--school-year", "2023", "--format", "csv"]
    exported = eoy(reset, [*args, "--out", str(out)])
    assert exported.returncode == 0, exported.stderr
    with (
        zipfile.ZipFile(io.BytesIO(body)) as shared_zip,
        zipfile.ZipFile(out / "early_2023_csv.zip") as exported_zip,
    ):
        for table in DELETED_TABLES:
            name = f"{table}.csv"
            assert exported_zip.read(name) == shared_zip.read(name), table


@pytest.mark.parametrize("target", ["duckdb"], indirect=True)
def test_share_on_a_folder_root_says_links_need_an_object_store(settings: Settings) -> None:
    od.fresh(settings)
    proc = eoy(settings, ["share", "--district", "early", "--school-year", "2023"])
    one_line(proc, "links need an object store")


# ---------------------------------------------------------------------------------------
# faults of the store: one line each, nothing deleted
# ---------------------------------------------------------------------------------------
def failed_run_deletes_nothing(settings: Settings, cause: str, **env: str) -> None:
    od.fresh(settings)
    with connect(settings) as wh:
        before = dump_app(wh, ignore_sync_state=True)
    proc = eoy(settings, RUN_DAY, **env)
    assert proc.returncode != 0
    doc = json.loads(proc.stdout)
    assert sorted(d["district_id"] for d in doc["districts"]) == list(RESET)
    for d in doc["districts"]:
        assert d["status"] == "failed" and d["step"] == "export", d
        assert cause in d["error"] and "\n" not in d["error"], d["error"]
        assert "nothing was deleted" in d["error"]
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip().startswith("eoy-reset: ")]
    assert lines and cause in lines[-1] and "Traceback" not in proc.stderr, proc.stderr
    assert "eoy-test-secret" not in proc.stderr + proc.stdout
    with connect(settings) as wh:
        assert dump_app(wh, ignore_sync_state=True) == before
        runs = dict(wh.query("select district_id, status from eoy_runner.reset_runs"))
    assert runs == dict.fromkeys(RESET, "failed")


@pytest.mark.parametrize("target", ["duckdb"], indirect=True)
def test_an_unreachable_endpoint_fails_each_district(
    settings: Settings, s3_server: ThrowawayS3
) -> None:
    env = {**s3_server.env(), "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    with aws_env(env):
        s3 = replace(settings, snapshot_root="s3://eoy-anywhere/snapshots")
        failed_run_deletes_nothing(s3, "cannot be reached")


@pytest.mark.parametrize("target", ["duckdb"], indirect=True)
def test_a_missing_bucket_fails_each_district(settings: Settings, s3_server: ThrowawayS3) -> None:
    with aws_env(s3_server.env()):
        s3 = replace(settings, snapshot_root="s3://eoy-no-such-bucket/snapshots")
        failed_run_deletes_nothing(s3, "bucket 'eoy-no-such-bucket' does not exist")


@pytest.mark.parametrize("target", ["duckdb"], indirect=True)
def test_refused_credentials_fail_each_district(settings: Settings, s3_with_auth: str) -> None:
    env = {
        "AWS_ENDPOINT_URL": s3_with_auth,
        "AWS_ACCESS_KEY_ID": "AKIANOTAREALKEY00000",
        "AWS_SECRET_ACCESS_KEY": "eoy-test-secret",
        "AWS_REGION": "us-east-1",
    }
    with aws_env(env):
        s3 = replace(settings, snapshot_root="s3://eoy-any/snapshots")
        failed_run_deletes_nothing(s3, "refused the credentials")


@pytest.mark.parametrize("target", ["duckdb"], indirect=True)
def test_an_upload_cut_off_part_way_fails_and_deletes_nothing(settings: Settings) -> None:
    """The store goes away while the first district's files are uploading."""
    server = ThrowawayS3().start()
    stopped = False
    try:
        bucket = server.make_bucket()
        with aws_env(server.env()):
            s3 = replace(settings, snapshot_root=f"s3://{bucket}/snapshots")
            store = open_store(s3)
            first = urlsplit(store.location(od.YEAR, "default")).path[1:] + "/"

            def stop_once_uploading() -> None:
                nonlocal stopped
                deadline = time.monotonic() + 300
                while time.monotonic() < deadline:
                    listed = server.client().list_objects_v2(Bucket=bucket, Prefix=first)
                    if listed.get("KeyCount"):
                        server.stop()
                        stopped = True
                        return
                    time.sleep(0.05)

            watcher = threading.Thread(target=stop_once_uploading, daemon=True)
            watcher.start()
            # each table waits 2 s once written, so the store goes away mid-district
            failed_run_deletes_nothing(
                s3, "cannot be reached", EOY_PAUSE="export:*:2", EOY_TEST_FAULTS="1"
            )
            watcher.join(timeout=5)
            assert stopped
    finally:
        if not stopped:
            server.stop()


# ---------------------------------------------------------------------------------------
# a kill mid-upload leaves nothing that passes for complete; the rerun completes
# ---------------------------------------------------------------------------------------
def test_a_kill_mid_upload_and_after_the_commit_then_a_rerun(
    s3: Settings, s3_server: ThrowawayS3
) -> None:
    od.fresh(s3)
    with connect(s3) as wh:
        before = dump_app(wh, ignore_sync_state=True)
    store = open_store(s3)
    first = store.location(od.YEAR, "default")

    killed = eoy(s3, RUN_DAY, EOY_FAULT="export:progress")  # files of the first uploading
    assert killed.returncode == -9
    assert keys_under(s3_server, first)  # some objects made it: no manifest among them
    assert MANIFEST not in keys_under(s3_server, first)
    assert store.snapshots() == [] and not store.is_complete(first)
    assert (
        "does not verify" in str(verify_snapshot(first)["problems"])
        or not verify_snapshot(first)["ok"]
    )
    with connect(s3) as wh:
        assert dump_app(wh, ignore_sync_state=True) == before

    killed = eoy(s3, RUN_DAY, EOY_FAULT="after:commit")  # committed, manifest not yet in place
    assert killed.returncode == -9
    assert store.snapshots() == [] and MANIFEST not in keys_under(s3_server, first)
    with connect(s3) as wh:
        assert student_rows(wh, "default") == 0

    again = eoy(s3, RUN_DAY)
    assert again.returncode == 0, again.stderr
    assert store.snapshots() == sorted(store.location(od.YEAR, d) for d in RESET)
    with connect(s3) as wh:
        runs = dict(wh.query("select district_id, status from eoy_runner.reset_runs"))
        for district in RESET:
            assert student_rows(wh, district) == 0
            sha = wh.scalar(
                "select manifest_sha256 from eoy_runner.reset_runs where district_id = %s",
                [district],
            )
            check = verify_snapshot(store.location(od.YEAR, district))
            assert check["ok"], check["problems"]
            assert check["manifest_sha256"] == sha
    assert runs == dict.fromkeys(RESET, "completed")
    assert keys_under(s3_server, first) == sorted(
        [MANIFEST, *(f"{t}.parquet" for t in DELETED_TABLES)]
    )

    # the restore reads the parts from the bucket and puts every row back
    restored = eoy(s3, ["restore", "--district", "default", "--school-year", "2023"])
    assert restored.returncode == 0, restored.stderr
    with connect(s3) as wh:
        after = dump_app(wh, ignore_sync_state=True)
    for table in DELETED_TABLES:
        mine = [r for r in before[table] if "default" in r]
        assert all(r in after[table] for r in mine), table


# every crash point of the matrix but the two above, on a bucket: the step edges of the ledger
# (slow, as the matrix is) and the two other points inside the transaction
STEP_POINTS = [f"{edge}:{step}" for step in STEPS for edge in ("before", "after")]
CRASH_POINTS = [pytest.param(p, marks=pytest.mark.slow) for p in STEP_POINTS] + [
    "export:students",
    "commit:delete",
]


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_kill_at_each_crash_point_then_a_rerun(s3: Settings, point: str) -> None:
    """Killed at a crash point, the run leaves in the bucket nothing that passes for complete
    but a committed district's verified snapshot, and deletes nothing it has not committed;
    the rerun ends with every due district reset once, its snapshot verified from the bucket
    and the very one the ledger recorded."""
    od.fresh(s3)
    with connect(s3) as wh:
        before = dump_app(wh, ignore_sync_state=True)
    store = open_store(s3)

    killed = eoy(s3, RUN_DAY, EOY_FAULT=point)
    assert killed.returncode == -9, f"{point} was never reached: {killed.stderr}"
    with connect(s3) as wh:
        committed = {
            d
            for (d,) in wh.query(
                "select distinct district_id from eoy_runner.reset_events "
                "where step = 'delete' and status = 'completed'"
            )
        }
        now = dump_app(wh, ignore_sync_state=True)
        for district in RESET:
            if district not in committed:  # its rows untouched
                for table in DELETED_TABLES:
                    mine = sorted(r for r in before[table] if district in r)
                    assert mine == sorted(r for r in now[table] if district in r), (district, table)
    for location in store.snapshots():
        assert any(location == store.location(od.YEAR, d) for d in committed), location
        assert verify_snapshot(location)["ok"]

    again = eoy(s3, RUN_DAY)
    assert again.returncode == 0, again.stderr
    assert store.snapshots() == sorted(store.location(od.YEAR, d) for d in RESET)
    with connect(s3) as wh:
        runs = dict(wh.query("select district_id, status from eoy_runner.reset_runs"))
        for district in RESET:
            assert student_rows(wh, district) == 0
            sha = wh.scalar(
                "select manifest_sha256 from eoy_runner.reset_runs where district_id = %s",
                [district],
            )
            check = verify_snapshot(store.location(od.YEAR, district))
            assert check["ok"], check["problems"]
            assert check["manifest_sha256"] == sha
            deletes = wh.scalar(
                "select count(*) from eoy_runner.reset_events "
                "where district_id = %s and step = 'delete' and status = 'completed'",
                [district],
            )
            assert deletes == 1, district
    assert runs == dict.fromkeys(RESET, "completed")


# ---------------------------------------------------------------------------------------
# runners on two hosts: one PostgreSQL warehouse, one bucket
# ---------------------------------------------------------------------------------------
def host(settings: Settings, folder: Path, args: list[str], **extra: str) -> Forked:
    """`eoy-reset` as another host would run it: a process of its own, with its own working
    folder and home."""
    home = folder / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = {**cli_env(settings, **extra), "HOME": str(home), "PYTHONPATH": str(PROJECT_DIR)}
    return fork_server.start(args, env, folder)


@pytest.mark.parametrize(
    "target", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_two_runner_hosts_share_one_warehouse_and_one_bucket(
    s3: Settings, wh: Warehouse, tmp_path: Path
) -> None:
    """Host 1's worker is killed while uploading its first districts; host 2 goes on; nothing that
    is not complete passes for complete; host 1's rerun finishes the rest."""
    generate_districts(wh, 16, seed=7, students_per_district=2, show_progress=False)
    due = expected_due(wh, 2023, od.AS_OF)
    assert len(due) >= 4
    before = dump_app(wh, ignore_sync_state=True)
    run = [*RUN, "--workers", "2"]
    slow = {"EOY_PAUSE": "after:export:2"}  # each district 2 s in hand: the hosts race
    one = host(s3, tmp_path / "host1", run, EOY_FAULT="export:progress", **slow)
    two = host(s3, tmp_path / "host2", run, **slow)
    _, died = one.communicate(timeout=600)
    _, err = two.communicate(timeout=600)
    # host 1's worker process was killed: host 1 stops there, saying so in one line
    assert one.returncode == 1, died
    assert "worker process" in died and "run again to finish" in died, died
    assert two.returncode == 0, err
    store = open_store(s3)
    runs = dict(wh.query("select district_id, status from eoy_runner.reset_runs"))
    done = {d for d, status in runs.items() if status == "completed"}
    assert done  # host 2 may also have taken the district host 1 was cut off in
    # only what committed is complete in the bucket; the rest kept every row
    assert store.snapshots() == sorted(store.location(2023, d) for d in done)
    for district in due - done:
        for table in DELETED_TABLES:
            mine = [r for r in before[table] if district in r]
            assert student_rows(wh, district) > 0 and mine, table

    again = host(s3, tmp_path / "host1", run)
    _, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    rows = wh.query(
        "select district_id, count(*) from eoy_runner.reset_events "
        "where step = 'delete' and status = 'completed' group by district_id"
    )
    assert dict(rows) == dict.fromkeys(due, 1)  # every due district reset exactly once
    assert store.snapshots() == sorted(store.location(2023, d) for d in due)
    for district in due:
        assert verify_snapshot(store.location(2023, district))["ok"]
        assert student_rows(wh, district) == 0
    for n in (1, 2):  # nothing of a snapshot on a host's own disk
        assert list((tmp_path / f"host{n}").rglob("*.parquet")) == []
