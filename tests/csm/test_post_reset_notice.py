"""The post-reset notice (`notices`): after a district's reset completed, one
message per administrator, with the district's certificate of disposition attached, sent once
over a real SMTP server on 127.0.0.1 and recorded without an address; never before the reset
completed, never without a certificate; with a bucket root, the link to the shared copy.

The operator's districts (tests/support/operator_data.py) with administrators added.
"""

from __future__ import annotations

import json
import urllib.request
import zipfile
from dataclasses import replace
from datetime import datetime
from email.message import EmailMessage
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from jobs.config import Settings
from jobs.snapshot.signing import KeyPair, generate_keypair, signature_matches
from jobs.warehouse.connection import connect
from tests.support import operator_data as od
from tests.support.operator_data import eoy
from tests.support.runner_helpers import insert
from tests.support.smtp_server import Inbox, local_smtp

SENDER = "csm@vendor.example"
ADMINS = {"early": ["early-a1", "early-a2"], "default": ["default-a1", "default-a2"]}
RESET = ("default", "early")


def add_admin(settings: Settings, district: str, educator: str) -> None:
    t = datetime(2023, 1, 1)
    with connect(settings) as wh:
        insert(
            wh,
            "educators",
            [(educator, district, None, f"{educator}@{district}.example", "Ad", "Min",
              "administrator", t, t)],
        )  # fmt: skip


@pytest.fixture
def keys(tmp_path: Path) -> KeyPair:
    return generate_keypair(tmp_path / "keys")


def notices(
    settings: Settings, inbox: Inbox, out: Path, day: str, **env: str
) -> tuple[dict[str, Any], str]:
    args = ["notices", "--as-of", day, "--out", str(out), "--send", "--json", "--from", SENDER]
    done = eoy(settings, [*args, "--smtp-host", "127.0.0.1", "--smtp-port", str(inbox.port)], **env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


def post_reset(inbox: Inbox) -> list[EmailMessage]:
    return [r.message for r in inbox.received if r.message["X-EOY-Notice"] == "post-reset"]


def attachments(message: EmailMessage) -> dict[str, bytes]:
    found = {}
    for part in message.iter_attachments():
        assert isinstance(part, EmailMessage)
        found[str(part.get_filename())] = part.get_payload(decode=True)
    return found


def test_the_post_reset_notice_goes_once_per_administrator_with_the_certificate(
    settings: Settings, keys: KeyPair, tmp_path: Path
) -> None:
    od.fresh(settings)
    for district, educators in ADMINS.items():
        for educator in educators:
            add_admin(settings, district, educator)
    add_admin(settings, "later", "later-a1")
    out = tmp_path / "notices"
    signing = {"EOY_SIGNING_KEY": str(keys.private_key)}
    with local_smtp() as inbox:
        # before the reset: the reset notices only, never the post-reset one
        before, _ = notices(settings, inbox, out, "2023-07-01", **signing)
        assert before["post_reset"] == [] and post_reset(inbox) == []
        assert before["totals"]["sent"] == 3  # early, default, later

        assert eoy(settings, ["run", "--as-of", "2023-07-28", "--yes"]).returncode == 0
        # no key and no certificate yet: the notices wait, said in one line each
        waiting, warned = notices(settings, inbox, out, "2023-07-28")
        assert post_reset(inbox) == []
        assert {n["status"] for n in waiting["post_reset"]} == {"no_certificate"}
        lines = warned.strip().splitlines()
        assert len(lines) == 2 and all("its post-reset notice waits" in ln for ln in lines)
        assert all("EOY_SIGNING_KEY" in ln for ln in lines)

        doc, warned = notices(settings, inbox, out, "2023-07-28", **signing)
        assert warned == ""
        sent = post_reset(inbox)
        assert sorted((m["X-EOY-District"], str(m["To"].addresses[0].addr_spec)) for m in sent) == [
            (d, f"{e}@{d}.example") for d in RESET for e in ADMINS[d]
        ]
        assert all(len(m["To"].addresses) == 1 for m in sent)
        envelopes = [r for r in inbox.received if r.message["X-EOY-Notice"] == "post-reset"]
        assert [r.rcpt_tos for r in envelopes] == [
            [str(m["To"].addresses[0].addr_spec)] for m in sent
        ]
        assert doc["totals"]["post_reset"]["by_status"] == {"sent": 4}
        public = serialization.load_pem_public_key(keys.public_key.read_bytes())
        with connect(settings) as wh:
            issued = dict(wh.query("select district_id, document from eoy_runner.certificates"))
        for message in sent:
            files = attachments(message)
            assert sorted(files) == ["certificate.html", "certificate.json", "certificate.json.sig"]
            district = message["X-EOY-District"]
            assert files["certificate.json"] == issued[district].encode("utf-8")
            assert signature_matches(
                public, files["certificate.json"], files["certificate.json.sig"]
            )  # type: ignore[arg-type]
            assert b"Certificate of disposition" in files["certificate.html"]
            body = message.get_body(("plain",))
            assert body is not None
            text = " ".join(str(body.get_content()).split())
            assert "your end-of-year data reset is complete" in text.lower()
            assert keys.fingerprint in text and "eoy-reset" not in text
            cert = json.loads(files["certificate.json"])
            assert f"{cert['rows_deleted']:,} rows of student data were deleted" in text
        for district in RESET:
            for educator in ADMINS[district]:
                path = out / "2023" / "post-reset" / district / f"{educator}.eml"
                assert path.stat().st_mode & 0o777 == 0o600

        # again: nothing more is sent
        again, _ = notices(settings, inbox, out, "2023-07-28", **signing)
        assert len(post_reset(inbox)) == 4
        assert again["totals"]["post_reset"]["by_status"] == {"already_sent": 4}
        # an administrator added later gets it, once, and nobody else again
        add_admin(settings, "early", "early-a3")
        notices(settings, inbox, out, "2023-07-28", **signing)
        assert [m["To"].addresses[0].addr_spec for m in post_reset(inbox)[4:]] == [
            "early-a3@early.example"
        ]
    with connect(settings) as wh:
        recorded = wh.query_dicts("select * from eoy_runner.certificate_notices_sent")
    assert sorted(r["educator_id"] for r in recorded) == sorted(
        [*ADMINS["early"], *ADMINS["default"], "early-a3"]
    )
    ledger = repr(recorded)
    for district, educators in ADMINS.items():  # never an address
        assert not [e for e in educators if f"{e}@{district}.example" in ledger]
    assert all(r["message_id"].endswith("@vendor.example>") for r in recorded)


@pytest.mark.s3
@pytest.mark.parametrize("target", ["duckdb"], indirect=True)
def test_with_a_bucket_the_notice_links_the_shared_copy(
    settings: Settings, s3_root: str, keys: KeyPair, tmp_path: Path
) -> None:
    s3 = replace(settings, snapshot_root=s3_root)
    od.fresh(s3)
    add_admin(s3, "early", "early-a1")
    add_admin(s3, "default", "default-a1")
    assert eoy(s3, ["run", "--as-of", "2023-07-28", "--yes"]).returncode == 0
    shared = eoy(s3, ["share", "--district", "early", "--school-year", "2023", "--expires", "1d"])
    assert shared.returncode == 0, shared.stderr
    with local_smtp() as inbox:
        notices(s3, inbox, tmp_path / "n", "2023-07-28", EOY_SIGNING_KEY=str(keys.private_key))
        by_district = {m["X-EOY-District"]: m for m in post_reset(inbox)}
    texts = {}
    for district, message in by_district.items():
        body = message.get_body(("plain",))
        assert body is not None
        texts[district] = str(body.get_content())
    link = next(w for w in texts["early"].split() if w.startswith("http"))
    with urllib.request.urlopen(link, timeout=30) as response:
        body = response.read()
    with zipfile.ZipFile(BytesIO(body)) as zf:
        assert "students.csv" in zf.namelist()
    assert "http" not in texts["default"]  # no copy was shared: the CSM sends one on request
    assert "ask your CSM" in " ".join(texts["default"].split())
    with connect(s3) as wh:
        assert link not in repr(wh.query("select * from eoy_runner.reset_events"))
