"""Signed certificates of disposition (issue 31), on both warehouses: `keygen`, `certificate`
and `verify-certificate` on the command line, the ledger and the snapshot's manifests as the
certificate's sources, the ways a certificate must fail (one changed byte, another key,
another district's certificate in its place, a restore since), the "copy destroyed"
certificate a purge issues, and the audit model that lists what is certified and owed.

The operator's districts (tests/support/operator_data.py): `early` and `default` are reset on
2023-07-28 by an approved plan.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from cryptography.hazmat.primitives import serialization

import jobs
from jobs.config import PROJECT_DIR, Settings
from jobs.report.html import build_audit_models
from jobs.snapshot.certificate import issue_certificate, utc_text
from jobs.snapshot.signing import (
    KeyPair,
    canonical_json,
    generate_keypair,
    load_private_key,
    signature_matches,
)
from jobs.snapshot.store import open_store
from jobs.warehouse.connection import connect
from jobs.warehouse.contract import DELETED_TABLES, STEPS
from jobs.warehouse.ledger import events, get_run
from tests.conftest import made_once
from tests.report.test_report import ARTIFACTS, render
from tests.support import operator_data as od
from tests.support.chromium import CHROMIUM, installed
from tests.support.operator_data import eoy, one_line

RESET = ("default", "early")
PYPROJECT = PROJECT_DIR / "pyproject.toml"


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's chromium, as the report's rendering test has it."""
    problem = installed()
    if problem is not None:
        pytest.fail(problem)
    return CHROMIUM


@pytest.fixture
def keys(tmp_path: Path) -> KeyPair:
    return generate_keypair(tmp_path / "keys")


def reset_by_an_approved_plan(settings: Settings) -> None:
    od.fresh(settings)
    plan = Path(settings.snapshot_root).parent / "plan.json"
    for args in (
        ["plan", "--as-of", "2023-07-28", "--out", str(plan)],
        ["approve", str(plan), "--by", "reviewer"],
        ["run", "--as-of", "2023-07-28", "--plan", str(plan)],
    ):
        done = eoy(settings, args)
        assert done.returncode == 0, (args, done.stderr)


@pytest.fixture
def approved_reset(
    target: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Settings]:
    """`early` and `default` reset by a plan a reviewer approved (made once, copied)."""
    yield from made_once(target, tmp_path, request, "approved_reset", reset_by_an_approved_plan)


def certify(settings: Settings, keys: KeyPair, district: str, out: Path, *more: str) -> Any:
    return eoy(
        settings,
        ["certificate", "--district", district, "--school-year", "2023", "--out", str(out), *more],
        EOY_SIGNING_KEY=str(keys.private_key),
    )


def verify(settings: Settings, path: Path, public: Path, *more: str) -> Any:
    return eoy(settings, ["verify-certificate", str(path), "--public-key", str(public), *more])


def deletes_of(settings: Settings, district: str) -> list[dict[str, Any]]:
    with connect(settings) as wh:
        return [
            e["detail"]
            for e in events(wh, district, od.YEAR, "delete")
            if e["status"] == "completed"
        ]


def test_a_certificate_states_the_ledger_and_the_manifests_and_verifies(
    approved_reset: Settings, keys: KeyPair, tmp_path: Path
) -> None:
    settings, out = approved_reset, tmp_path / "early"
    done = certify(settings, keys, "early", out, "--json")
    assert done.returncode == 0, done.stderr
    said = json.loads(done.stdout)
    assert said["ok"] and said["reused"] is False and said["kind"] == "disposition"

    data = (out / "certificate.json").read_bytes()
    doc = json.loads(data)
    assert canonical_json(doc) == data  # sorted keys, no insignificant whitespace, UTF-8
    assert b"\n" not in data and b", " not in data and b'": ' not in data
    assert said["document_sha256"] == hashlib.sha256(data).hexdigest()

    # every deleted table, counted as the ledger's delete and the snapshot's manifest count it
    [delete] = deletes_of(settings, "early")
    manifest = open_store(settings).read_manifest(delete["path"])
    tables = {t["table"]: t for t in doc["tables"]}
    assert sorted(tables) == sorted(DELETED_TABLES) == sorted(delete["rows"])
    for table, entry in tables.items():
        assert entry["rows_deleted"] == delete["rows"][table] == manifest["tables"][table]["rows"]
        assert entry["rows_by_part"] == {"main": delete["rows"][table]}
    assert doc["rows_deleted"] == sum(delete["rows"].values()) > 0
    [part] = doc["snapshot"]["parts"]
    assert (part["part"], part["location"]) == ("main", delete["path"])
    assert part["manifest_sha256"] == delete["manifest_sha256"]
    assert part["purged_at"] is None and part["retain_until"] > part["created_at"]
    assert (doc["district"]["id"], doc["school_year"], doc["school_year_label"]) == (
        "early",
        2023,
        "2022-23",
    )
    assert doc["effective_reset_date"] == "2023-07-03"
    assert [s["step"] for s in doc["reset"]["steps"]] == [
        "pause_syncs",
        "export",
        "verify",
        "delete",
        "check_retention",
        "complete",
    ]
    # when each step ran: the time the ledger recorded it completed, to the second
    with connect(settings) as wh:
        ledger = events(wh, "early", od.YEAR)
        run = get_run(wh, "early", od.YEAR)
        name = wh.scalar("select name from app.districts where district_id = 'early'")
    completed = [e for e in ledger if e["status"] == "completed" and e["step"] in STEPS]
    assert [(s["step"], s["at"]) for s in doc["reset"]["steps"]] == [
        (e["step"], utc_text(e["at"])) for e in completed
    ]
    assert doc["reset"]["started_at"] == utc_text(run["started_at"])
    assert doc["reset"]["completed_at"] == utc_text(run["finished_at"])
    assert all(
        re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", s["at"]) for s in doc["reset"]["steps"]
    )
    # the district's name as the warehouse has it, and the tool (and version) that issued it
    assert doc["district"] == {"id": "early", "name": name} and name
    assert doc["issuer"] == {"tool": "eoy-reset", "version": jobs.__version__}
    assert jobs.__version__ == tomllib.loads(PYPROJECT.read_text())["project"]["version"]
    assert doc["approval"]["approved_by"] == "reviewer" and doc["approval"]["approved_at"]
    with connect(settings) as wh:
        assert doc["approval"]["plan_sha256"] == wh.scalar(
            "select plan_sha256 from eoy_runner.plan_approvals"
        )

    # signed with the key keygen made, whose fingerprint the certificate prints
    public = serialization.load_pem_public_key(keys.public_key.read_bytes())
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert doc["signing_key"] == {
        "algorithm": "Ed25519",
        "fingerprint_sha256": hashlib.sha256(raw).hexdigest(),
    }
    signature = (out / "certificate.json.sig").read_bytes()
    assert len(signature) == 64 and signature_matches(public, data, signature)  # type: ignore[arg-type]
    html = (out / "certificate.html").read_text(encoding="utf-8")
    assert "District early" in html and hashlib.sha256(raw).hexdigest() in html
    assert f"{doc['rows_deleted']:,} rows" in html

    checked = verify(settings, out / "certificate.json", keys.public_key, "--json")
    assert checked.returncode == 0, checked.stderr
    assert sorted(json.loads(checked.stdout)["checked"]) == ["ledger", "signature", "snapshot"]
    plain = verify(settings, out / "certificate.json", keys.public_key)
    assert (plain.returncode, plain.stdout, plain.stderr) == (0, "valid\n", "")

    # the same facts certified again: the same certificate, byte for byte
    again = certify(settings, keys, "early", tmp_path / "again", "--json")
    assert json.loads(again.stdout)["reused"] is True
    assert (tmp_path / "again" / "certificate.json").read_bytes() == data
    with connect(settings) as wh:
        kept = wh.query_dicts(
            "select district_id, kind, document_sha256, key_fingerprint, document, "
            "written_to from eoy_runner.certificates"
        )
    assert len(kept) == 1 and kept[0]["document"].encode() == data
    assert kept[0]["key_fingerprint"] == keys.fingerprint
    assert kept[0]["written_to"] == str((tmp_path / "again").resolve())


def test_a_changed_byte_another_key_or_another_districts_certificate_fail_in_one_line(
    approved_reset: Settings, keys: KeyPair, tmp_path: Path
) -> None:
    settings = approved_reset
    early, default = tmp_path / "early", tmp_path / "default"
    for district, out in (("early", early), ("default", default)):
        assert certify(settings, keys, district, out).returncode == 0

    # one byte changed: a count, and (apart) a letter of the district's name
    changed = tmp_path / "changed"
    shutil.copytree(early, changed)
    data = (changed / "certificate.json").read_bytes()
    at = data.index(b'"rows_deleted":') + len(b'"rows_deleted":')
    (changed / "certificate.json").write_bytes(data[:at] + b"9" + data[at + 1 :])
    one_line(verify(settings, changed / "certificate.json", keys.public_key), "invalid", "changed")
    (changed / "certificate.json").write_bytes(data.replace(b"District early", b"District earlz"))
    one_line(verify(settings, changed / "certificate.json", keys.public_key), "invalid", "changed")

    # checked with another key
    other = generate_keypair(tmp_path / "other")
    one_line(
        verify(settings, early / "certificate.json", other.public_key),
        "invalid: signed with another key",
    )

    # default's certificate put where early's was: its signature is early's, or, both files
    # moved, the certificate is default's and says so
    swapped = tmp_path / "swapped"
    shutil.copytree(early, swapped)
    shutil.copy(default / "certificate.json", swapped / "certificate.json")
    one_line(verify(settings, swapped / "certificate.json", keys.public_key), "invalid")
    shutil.copy(default / "certificate.json.sig", swapped / "certificate.json.sig")
    one_line(
        verify(settings, swapped / "certificate.json", keys.public_key, "--district", "early"),
        "invalid: the certificate is for district 'default', not 'early'",
    )

    # signed with our key, but never issued by this ledger: a forgery by whoever has the key
    forged = json.loads((early / "certificate.json").read_bytes())
    forged["rows_deleted"] += 1
    body = canonical_json(forged)
    (changed / "certificate.json").write_bytes(body)
    key = load_private_key(keys.private_key)
    (changed / "certificate.json.sig").write_bytes(key.sign(body))
    offline = verify(settings, changed / "certificate.json", keys.public_key, "--offline")
    assert offline.stdout == "valid\n"  # the signature alone cannot tell
    one_line(
        verify(settings, changed / "certificate.json", keys.public_key),
        "invalid: the ledger",
        "never issued this certificate",
    )


def test_restore_then_certificate_refuses_and_voids_the_earlier_one(
    approved_reset: Settings, keys: KeyPair, tmp_path: Path
) -> None:
    settings, out = approved_reset, tmp_path / "early"
    assert certify(settings, keys, "early", out).returncode == 0
    restored = eoy(settings, ["restore", "--district", "early", "--school-year", "2023"])
    assert restored.returncode == 0, restored.stderr

    refused = certify(settings, keys, "early", tmp_path / "after")
    one_line(refused, "'early'", "was restored", "no disposition to certify")
    assert not (tmp_path / "after").exists()
    one_line(
        verify(settings, out / "certificate.json", keys.public_key),
        "invalid: the ledger now says the reset restored",
    )
    never = certify(settings, keys, "later", tmp_path / "later")
    one_line(never, "no reset of district 'later' for school year 2023 is in the ledger")

    build_audit_models(settings, od.AS_OF, od.YEAR)
    with connect(settings) as wh:
        audit = {
            (r["district_id"], r["kind"]): r
            for r in wh.query_dicts("select * from eoy_audit.audit_certificates")
        }
    assert audit[("early", "disposition")]["certificate_status"] == "void"
    assert audit[("default", "disposition")]["certificate_status"] == "owed"
    assert audit[("early", "disposition")]["certificates_issued"] == 1
    assert set(audit) == {("early", "disposition"), ("default", "disposition")}


def test_a_purge_issues_the_copy_destroyed_certificate(
    approved_reset: Settings, keys: KeyPair, tmp_path: Path
) -> None:
    settings = approved_reset
    assert certify(settings, keys, "early", tmp_path / "early").returncode == 0
    # without a key the purge goes, and says in one line what it owes and how to issue it
    purge = ["purge-snapshots", "--older-than", "0", "--yes", "--json"]
    dry = eoy(settings, [*purge, "--dry-run"])
    assert dry.returncode == 0 and dry.stderr == "" and json.loads(dry.stdout)["certificates"] == []
    with_key = eoy(settings, purge, EOY_SIGNING_KEY=str(keys.private_key))
    assert with_key.returncode == 0, with_key.stderr
    doc = json.loads(with_key.stdout)
    assert sorted(e["district_id"] for e in doc["purged"]) == list(RESET)
    assert sorted(c["district_id"] for c in doc["certificates"]) == list(RESET)
    assert doc["certificates_owed"] == [] and with_key.stderr == ""

    for district in RESET:
        out = tmp_path / f"{district}-destroyed"
        done = certify(settings, keys, district, out, "--kind", "copy_destroyed", "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["reused"] is True  # the purge issued it
        cert = json.loads((out / "certificate.json").read_bytes())
        [part] = cert["destroyed"]
        [delete] = deletes_of(settings, district)
        assert part["manifest_sha256"] == delete["manifest_sha256"] and part["purged_at"]
        assert part["location"] == delete["path"] and cert["still_kept"] == []
        checked = verify(settings, out / "certificate.json", keys.public_key)
        assert checked.stdout == "valid\n", checked.stderr
    # the certificate of disposition issued before the purge still holds; a new one says when
    assert verify(settings, tmp_path / "early" / "certificate.json", keys.public_key).stdout == (
        "valid\n"
    )
    assert certify(settings, keys, "early", tmp_path / "after").returncode == 0
    parts = json.loads((tmp_path / "after" / "certificate.json").read_bytes())["snapshot"]
    assert parts["parts"][0]["purged_at"] is not None

    build_audit_models(settings, od.AS_OF, od.YEAR)
    with connect(settings) as wh:
        audit = {
            (r["district_id"], r["kind"]): r["certificate_status"]
            for r in wh.query_dicts("select * from eoy_audit.audit_certificates")
        }
    assert audit == {
        ("early", "disposition"): "certified",
        ("default", "disposition"): "owed",
        ("early", "copy_destroyed"): "certified",
        ("default", "copy_destroyed"): "certified",
    }


@pytest.mark.parametrize("target", ["duckdb"], indirect=True)
def test_a_purge_without_a_key_owes_the_certificate_and_says_so(
    settings: Settings, keys: KeyPair, tmp_path: Path
) -> None:
    od.fresh(settings)
    assert eoy(settings, ["run", "--as-of", "2023-07-28", "--yes"]).returncode == 0
    purge = ["purge-snapshots", "--older-than", "0", "--yes", "--json"]
    # a key that cannot sign is said before anything is purged
    keys.private_key.chmod(0o640)
    one_line(eoy(settings, purge, EOY_SIGNING_KEY=str(keys.private_key)), "open to others")
    assert len(open_store(settings).snapshots()) == 2
    keys.private_key.chmod(0o600)
    done = eoy(settings, purge)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["certificates"] == [] and len(doc["purged"]) == 2
    assert sorted(o["district_id"] for o in doc["certificates_owed"]) == list(RESET)
    [note] = done.stderr.splitlines()
    assert note.startswith("eoy-reset: note: 2 copy-destroyed certificate(s) not issued")
    assert "EOY_SIGNING_KEY" in note and "--kind copy_destroyed" in note
    later = certify(settings, keys, "early", tmp_path / "destroyed", "--kind", "copy_destroyed")
    assert later.returncode == 0, later.stderr
    checked = verify(settings, tmp_path / "destroyed" / "certificate.json", keys.public_key)
    assert checked.stdout == "valid\n", checked.stderr


def test_a_delta_part_is_certified_with_its_own_counts(
    settings: Settings, wh: Any, keys: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.reset.test_runner import arrive_during_pass, run
    from tests.support.runner_helpers import insert

    od.load(wh)
    district = "early"

    def late_student(w: Any, d: str) -> None:
        insert(w, "students", [(f"{d}-late", d, f"{d}-sch", "u", "F", "L", "K", None)])

    arrive_during_pass(monkeypatch, wh, district, "students", late_student)
    assert run(settings, districts=[district]).districts[0].status == "failed"
    monkeypatch.undo()
    assert run(settings, districts=[district]).districts[0].status == "completed"
    monkeypatch.setenv("EOY_SIGNING_KEY", str(keys.private_key))
    doc = issue_certificate(settings, district, od.YEAR).body
    main, delta = deletes_of(settings, district)
    assert [p["part"] for p in doc["snapshot"]["parts"]] == ["main", "delta-1"]
    store = open_store(settings)
    for said, done in zip(doc["snapshot"]["parts"], (main, delta), strict=True):
        manifest = store.read_manifest(done["path"])
        assert said["rows"] == done["rows"]
        assert said["rows"] == {t: v["rows"] for t, v in manifest["tables"].items()}
    students = next(t for t in doc["tables"] if t["table"] == "students")
    assert students["rows_by_part"] == {"main": 2, "delta-1": 1}
    assert students["rows_deleted"] == 3
    assert doc["rows_deleted"] == sum(main["rows"].values()) + sum(delta["rows"].values())


@pytest.mark.parametrize("target", ["duckdb"], indirect=True)
def test_keys_are_made_safely_and_a_loose_or_wrong_key_is_one_line(
    settings: Settings, tmp_path: Path
) -> None:
    old = os.umask(0)
    try:
        made = eoy(settings, ["keygen", "--out", str(tmp_path / "k"), "--json"])
    finally:
        os.umask(old)
    assert made.returncode == 0, made.stderr
    doc = json.loads(made.stdout)
    private = Path(doc["private_key_path"])
    assert private.stat().st_mode & 0o777 == 0o600
    assert Path(doc["public_key_path"]).stat().st_mode & 0o777 == 0o644
    assert private.read_text() not in made.stdout
    one_line(eoy(settings, ["keygen", "--out", str(tmp_path / "k")]), "exists already")

    od.fresh(settings)
    assert eoy(settings, ["run", "--as-of", "2023-07-28", "--yes"]).returncode == 0
    args = ["certificate", "--district", "early", "--school-year", "2023", "--out"]
    one_line(eoy(settings, [*args, str(tmp_path / "c")]), "no signing key", "EOY_SIGNING_KEY")
    private.chmod(0o644)
    one_line(
        eoy(settings, [*args, str(tmp_path / "c")], EOY_SIGNING_KEY=str(private)),
        "open to others",
        "chmod 600",
    )
    one_line(
        eoy(settings, [*args, str(tmp_path / "c")], EOY_SIGNING_KEY=doc["public_key_path"]),
        "is not an unencrypted Ed25519 private key",
    )
    private.chmod(0o600)
    assert eoy(settings, [*args, str(tmp_path / "c")], EOY_SIGNING_KEY=str(private)).returncode == 0
    # one folder per certificate: another district's is never replaced
    one_line(
        eoy(
            settings,
            ["certificate", "--district", "default", "--school-year", "2023", "--out",
             str(tmp_path / "c")],
            EOY_SIGNING_KEY=str(private),
        ),
        "is another certificate",
    )  # fmt: skip
    one_line(
        eoy(settings, ["verify-certificate", str(tmp_path / "c" / "certificate.json"),
                       "--public-key", str(private)]),
        "is not an Ed25519 public key",
    )  # fmt: skip
    one_line(
        eoy(settings, ["verify-certificate", str(tmp_path / "nope.json"), "--public-key",
                       doc["public_key_path"]]),
        "does not exist",
    )  # fmt: skip


@pytest.mark.parametrize("target", ["duckdb"], indirect=True)
def test_the_html_certificate_renders_in_chromium(
    settings: Settings, keys: KeyPair, chromium: Path, tmp_path: Path
) -> None:
    od.fresh(settings)
    hostile = "<script>alert('x')</script> & \"Early\" Unified"
    with connect(settings) as wh:
        wh.execute("update app.districts set name = %s where district_id = 'early'", [hostile])
    assert eoy(settings, ["run", "--as-of", "2023-07-28", "--yes"]).returncode == 0
    out = tmp_path / "certificate"
    assert certify(settings, keys, "early", out).returncode == 0
    html = out / "certificate.html"
    text = html.read_text(encoding="utf-8")
    assert "<script" not in text.lower() and "&lt;script&gt;" in text
    assert not re.search(r"""(src|href)\s*=""", text)  # nothing to fetch or follow

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "certificate.png"
    shot.unlink(missing_ok=True)
    done = render(
        chromium, html, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1000,1600"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.stat().st_size > 20_000  # a blank page is a few kB
    dom = render(chromium, html, tmp_path / "profile", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert [line for line in dom.stderr.splitlines() if ":CONSOLE" in line] == []
    doc = json.loads((out / "certificate.json").read_bytes())
    for title in ("Deleted, table by table", "The snapshot kept before the delete", "Signature"):
        assert f">{title}</h2>" in dom.stdout, title
    for table in doc["tables"]:
        assert f'<td class="">{table["table"]}</td>' in dom.stdout
    assert keys.fingerprint in dom.stdout and "<script" not in dom.stdout.lower()


def report_links(settings: Settings, report: Path) -> dict[tuple[str, str], str]:
    """The report's certificates section: each (district, kind) with what its last cell says
    (`link <target>`, or the text)."""
    done = eoy(settings, ["report", "--html", str(report), "--as-of", "2023-07-28",
                          "--school-year", "2023"])  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = report.read_text(encoding="utf-8")
    section = text.split('<section id="certificates">')[1].split("</section>")[0]
    found = {}
    for row in re.findall(r"<tr>(.*?)</tr>", section.split("<tbody>")[1], re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        link = re.search(r'<a href="([^"]+)">', cells[-1])
        found[(cells[0], cells[3])] = f"link {unquote(link.group(1))}" if link else cells[-1]
    return found


def test_the_html_report_links_each_completed_districts_certificate(
    approved_reset: Settings, keys: KeyPair, tmp_path: Path
) -> None:
    """A completed reset's certificate, once written, is a link from the report (relative to
    the report's folder) to its certificate.html; one not issued yet says how to issue it."""
    settings = approved_reset
    report = tmp_path / "reports" / "report.html"
    report.parent.mkdir()
    written = tmp_path / "certificates" / "early"
    assert certify(settings, keys, "early", written).returncode == 0
    first = report_links(settings, report)
    assert set(first) == {(d, "disposition") for d in RESET}
    assert first[("early", "disposition")] == "link ../certificates/early/certificate.html"
    assert (
        "owed: <code>eoy-reset certificate --district default --school-year 2023"
        in (first[("default", "disposition")])
    )
    assert certify(settings, keys, "default", tmp_path / "certificates" / "default").returncode == 0
    links = report_links(settings, report)
    for district in RESET:
        said, _, href = links[(district, "disposition")].partition(" ")
        assert said == "link", links[(district, "disposition")]
        target = (report.parent / href).resolve()
        assert target == (tmp_path / "certificates" / district / "certificate.html").resolve()
        assert f"District {district}" in target.read_text(encoding="utf-8")
