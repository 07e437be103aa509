"""`eoy-reset notices` (issue 14): one RFC 5322 notice per district with a reset in the school
year, to its administrators, for every calendar case of the reset-date rules; `--send` delivers
them to a real SMTP server on 127.0.0.1 once per reset date and records each in the ledger (never an
address); a district with no administrator email is unreachable; audit_notices tells who was
notified and whose date changed since.

The districts are the worked examples ex1..ex8 (tests/support/reset_data.py) and the ledger cases,
as of 2023-06-01 for school year 2023.
"""

from __future__ import annotations

import email
import email.policy
import json
from datetime import date
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from jobs.config import Settings
from jobs.csm.notices import NoticeError, SmtpServer, make_notices
from jobs.csm.requests import request_date
from jobs.report.html import build_audit_models
from jobs.warehouse import Warehouse, connect
from jobs.warehouse.schema import init_warehouse
from tests.support.crash_helpers import run_cli
from tests.support.reset_data import load_districts, load_student_data, read_examples
from tests.support.smtp_server import free_port, local_smtp, self_signed

AS_OF = date(2023, 6, 1)
SENDER = "csm@vendor.example"
EXAMPLES = [e["district_id"] for e in read_examples()]  # ex1 .. ex8
UNREACHABLE_EXAMPLE = "ex4"  # its administrator has no email
# the ledger cases (tests/support/reset_data.py) have no educators; "done" is reset already
LEDGER_DISTRICTS = ["done_2022", "failed", "later", "restored_moved", "restored_same"]
REACHABLE = [d for d in EXAMPLES if d != UNREACHABLE_EXAMPLE]


def admin(district_id: str) -> str:
    return f"{district_id}.admin@example.org"


def load(wh: Warehouse) -> None:
    load_districts(wh)
    for n, district_id in enumerate(EXAMPLES, 1):
        load_student_data(wh, district_id, n + 1)
    wh.execute(
        "update app.educators set email = district_id || '.admin@example.org' "
        "where role = 'administrator'"
    )
    wh.execute(
        "update app.educators set email = null where role = 'administrator' and district_id = %s",
        [UNREACHABLE_EXAMPLE],
    )
    # a teacher of ex2 is an administrator too: two recipients there
    wh.execute(
        "update app.educators set role = 'administrator', email = 'ex2.second@example.org' "
        "where educator_id = 'ex2_e_active'"
    )


@pytest.fixture
def districts(settings: Settings, wh: Warehouse) -> Settings:
    load(wh)
    wh.close()
    return settings


def read_eml(path: Path) -> EmailMessage:
    data = path.read_bytes()
    assert b"\r\n" in data  # RFC 5322 line ends
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def parts(message: EmailMessage) -> tuple[str, str]:
    assert message.get_content_type() == "multipart/alternative"
    plain, html = message.get_body(("plain",)), message.get_body(("html",))
    assert plain is not None and html is not None
    return str(plain.get_content()), str(html.get_content())


def flat(text: str) -> str:
    return " ".join(text.split())


def counts(settings: Settings, district_id: str) -> dict[str, int]:
    with connect(settings) as wh:

        def n(table: str) -> int:
            return int(
                wh.scalar(f"select count(*) from app.{table} where district_id = %s", [district_id])
            )

        tables = (
            "students",
            "classrooms",
            "classroom_enrollments",
            "assessments",
            "progress",
            "pathways",
            "usage_sessions",
        )
        found = {t: n(t) for t in tables}
        return {**found, "all": sum(found.values())}


# What each calendar case's notice says about its date (worked examples).
WHY = {
    "ex1": (
        "is on Friday, July 28, 2023",
        "This is the default reset date: the district has not asked for another.",
    ),
    "ex2": ("is on Monday, June 26, 2023", "This is the date you asked your CSM for."),
    "ex3": (
        "is on Friday, July 28, 2023",
        "The date you asked for, Sunday, June 18, 2023, could not be used: it is before the "
        "earliest reset date, Monday, June 19, 2023.",
    ),
    "ex4": (
        "is on Saturday, August 5, 2023",
        "This is the first day after your school year and summer session end (Friday, "
        "August 4, 2023)",
    ),
    "ex5": (
        "is on Saturday, July 1, 2023",
        "The date you asked for, Friday, June 30, 2023, falls during your session, so the "
        "reset moves to the day after it ends.",
    ),
    "ex6": (
        "is blocked: its reset date, Wednesday, August 16, 2023, is not before rostering for "
        "the new school year starts (Wednesday, August 16, 2023)",
        "rostering for the new year must start later",
    ),
    "ex7": (
        "is on Friday, July 28, 2023",
        "it is not before rostering for the new school year starts (Monday, August 21, 2023)",
    ),
    "ex8": (
        "is blocked: its reset date, Friday, July 28, 2023, is not before rostering",
        "any day from Monday, June 19, 2023 to Thursday, July 27, 2023",
    ),
}
WINDOWS = {
    "ex1": "any day from Monday, June 19, 2023 on",
    "ex2": "any day from Monday, June 19, 2023 to Saturday, August 19, 2023 (after your "
    "school year and summer session, before rostering for the new year starts), until "
    "Sunday, June 25, 2023",
    "ex4": "any day from Saturday, August 5, 2023 to Sunday, August 27, 2023",
}


def test_a_notice_for_every_calendar_case(districts: Settings, tmp_path: Path) -> None:
    doc = make_notices(districts, AS_OF, tmp_path / "notices", sender=SENDER)
    by_id = {n["district_id"]: n for n in doc["notices"]}
    assert sorted(by_id) == sorted(EXAMPLES + LEDGER_DISTRICTS)  # "done" is reset already
    assert sorted(doc["unreachable"]) == sorted([UNREACHABLE_EXAMPLE, *LEDGER_DISTRICTS])
    assert doc["totals"]["by_status"] == {"written": 7, "unreachable": 6}
    assert (by_id["ex6"]["schedule_status"], by_id["ex8"]["schedule_status"]) == (
        "blocked",
        "blocked",
    )

    for district_id in EXAMPLES:
        path = tmp_path / "notices" / "2023" / f"{district_id}.eml"
        assert by_id[district_id]["path"] == path
        assert path.stat().st_mode & 0o777 == 0o600
        message = read_eml(path)
        text, html = parts(message)
        said, why = WHY[district_id]
        assert said in flat(text) and why in flat(text), district_id
        assert message["From"] == SENDER
        assert message["Message-ID"] and message["Date"]
        assert message["X-EOY-District"] == district_id
        if district_id == UNREACHABLE_EXAMPLE:
            assert message["To"] is None
        else:
            to = sorted(a.addr_spec for a in message["To"].addresses)
            expected = [admin(district_id)] + (
                ["ex2.second@example.org"] if district_id == "ex2" else []
            )
            assert to == sorted(expected)
            assert by_id[district_id]["recipients"] == len(expected)
        blocked = district_id in ("ex6", "ex8")
        assert ("needs a new date" in message["Subject"]) is blocked
        assert ("What your CSM must do" in text) is blocked
        if district_id in WINDOWS:
            assert WINDOWS[district_id] in flat(text)
        # the procedure's table, in both parts
        for line in (
            "Student accounts Deleted",
            "Classrooms Deleted",
            "Educator accounts Retained",
            "Organizations (schools and districts) Retained",
        ):
            assert line in flat(text)
        assert "<td>Educator accounts</td><td>Retained</td>" in html
        # what goes, counted
        n = counts(districts, district_id)
        # per table the scope declares deleted, in its order (those with rows), and in all
        listed = " ".join(f"{t} {rows:,}" for t, rows in n.items() if t != "all" and rows)
        assert f"Data Rows {listed} All student data {n['all']:,}" in flat(text)
        # inactive educators: E F never logged in; C D (last login 2022-07-27) is idle for a
        # reset on 2023-07-28 but not for one on 2023-06-26
        mail = "" if district_id == UNREACHABLE_EXAMPLE else f" <{admin(district_id)}>"
        assert f"E F{mail}, administrator, never logged in" in text
        assert ("C D <c@example.org>, teacher, last login 2022-07-27" in text) is (
            district_id in ("ex1", "ex3", "ex4", "ex6", "ex7", "ex8")
        ), district_id
        assert "A B <" not in text
        # how to get a copy, in an administrator's words: never one of our commands
        assert "ask your CSM for it: they will send you a zip of your district's data" in flat(text)
        assert "eoy-reset" not in text + html
        assert f"E F{mail.replace('<', '&lt;').replace('>', '&gt;')}, administrator" in html
        # no student username (the students are "S T" with usernames <district>_st<n>)
        assert f"{district_id}_st0" not in text + html

    with connect(districts) as wh:  # writing notices sends and records nothing
        assert wh.scalar("select count(*) from eoy_runner.notices_sent") == 0


def test_send_delivers_each_notice_once(districts: Settings, tmp_path: Path) -> None:
    out = tmp_path / "notices"
    with local_smtp() as inbox:
        server = SmtpServer("127.0.0.1", inbox.port)
        doc = make_notices(districts, AS_OF, out, sender=SENDER, smtp=server)
        assert doc["totals"]["sent"] == len(REACHABLE) == len(inbox.received)
        arrived = {r.message["X-EOY-District"]: r for r in inbox.received}
        assert sorted(arrived) == sorted(REACHABLE)
        for district_id, got in arrived.items():
            expected = [admin(district_id)] + (
                ["ex2.second@example.org"] if district_id == "ex2" else []
            )
            assert sorted(got.rcpt_tos) == sorted(expected)
            assert got.mail_from == SENDER
            text, _ = parts(got.message)
            assert WHY[district_id][0] in flat(text)
            sent_file = read_eml(out / "2023" / f"{district_id}.eml")
            assert sent_file["Message-ID"] == got.message["Message-ID"]

        with connect(districts) as wh:
            ledger = wh.query_dicts("select * from eoy_runner.notices_sent order by district_id")
            text_of_ledger = repr(wh.query("select * from eoy_runner.notices_sent"))
        assert [r["district_id"] for r in ledger] == sorted(REACHABLE)
        for row in ledger:
            assert row["message_id"] == arrived[row["district_id"]].message["Message-ID"]
            assert row["recipients"] == (2 if row["district_id"] == "ex2" else 1)
        assert "example.org" not in text_of_ledger  # never an address

        # again: nothing new arrives, the files keep the Message-IDs that were sent
        again = make_notices(districts, AS_OF, out, sender=SENDER, smtp=server)
        assert len(inbox.received) == len(REACHABLE)
        assert again["totals"]["by_status"] == {
            "already_sent": len(REACHABLE),
            "unreachable": 6,
        }
        assert (
            read_eml(out / "2023" / "ex1.eml")["Message-ID"] == arrived["ex1"].message["Message-ID"]
        )

        # a CSM moves ex1's date: the audit sees it, and the next --send sends ex1 only
        request_date(districts, "ex1", date(2023, 7, 10), by="alice")
        build_audit_models(districts, AS_OF, 2023)
        audit = audit_rows(districts)
        assert audit["ex1"]["is_changed_after_notice"] is True
        assert audit["ex1"]["request_changes_after_notice"] == 1
        assert audit["ex2"]["is_changed_after_notice"] is False
        assert audit["ex2"]["notice_status"] == "notified"
        assert audit["ex4"]["notice_status"] == "unreachable"
        assert audit["failed"]["notice_status"] == "unreachable"

        third = make_notices(districts, AS_OF, out, sender=SENDER, smtp=server)
        assert third["totals"]["sent"] == 1 and len(inbox.received) == len(REACHABLE) + 1
        latest = inbox.received[-1].message
        assert latest["X-EOY-District"] == "ex1" and latest["X-EOY-Reset-Date"] == "2023-07-10"
        assert "is on Monday, July 10, 2023" in flat(parts(latest)[0])

    build_audit_models(districts, AS_OF, 2023)
    audit = audit_rows(districts)
    assert audit["ex1"]["notices_sent"] == 2 and audit["ex1"]["is_changed_after_notice"] is False
    assert audit["ex1"]["notified_reset_date"] == date(2023, 7, 10)
    assert audit["ex2"]["last_notice_recipients"] == 2


def audit_rows(settings: Settings) -> dict[str, dict[str, Any]]:
    with connect(settings) as wh:
        return {
            r["district_id"]: r for r in wh.query_dicts("select * from eoy_audit.audit_notices")
        }


def test_an_smtp_server_that_is_down_is_one_line_and_records_nothing(
    districts: Settings, tmp_path: Path
) -> None:
    port = free_port()  # nobody listens there
    with pytest.raises(NoticeError) as failed:
        make_notices(
            districts, AS_OF, tmp_path / "n", sender=SENDER, smtp=SmtpServer("127.0.0.1", port)
        )
    message = str(failed.value)
    assert "\n" not in message
    assert message.startswith("could not send the notice of district 'ex1' through SMTP ")
    assert f"127.0.0.1:{port}" in message and "run the same command again" in message
    with connect(districts) as wh:
        assert wh.scalar("select count(*) from eoy_runner.notices_sent") == 0


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with `cryptography`."""
    return self_signed(tmp_path)


def test_the_command_sends_over_starttls(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    """`notices --send` on the command line, to a server that takes mail only after STARTTLS
    (the client trusts the test's certificate through SSL_CERT_FILE)."""
    settings = Settings(
        target="duckdb", duckdb_path=tmp_path / "w.duckdb", snapshot_root=tmp_path / "s"
    )
    with connect(settings, create=True, require_init=False) as wh:
        init_warehouse(wh)
        load(wh)
    out = tmp_path / "notices"
    with local_smtp(certificate) as inbox:
        args = ["notices", "--as-of", "2023-06-01", "--out", str(out), "--send"]
        args += ["--smtp-host", "127.0.0.1", "--smtp-port", str(inbox.port)]
        done = run_cli(settings, args)
        assert done.returncode != 0 and "--send needs --from" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1

        done = run_cli(
            settings, [*args, "--from", SENDER, "--json"], SSL_CERT_FILE=str(certificate[0])
        )
        assert done.returncode == 0, done.stderr
        assert len(inbox.received) == len(REACHABLE)
        assert all(r.tls for r in inbox.received)
        assert '"sent": 7' in done.stdout and '"unreachable": 6' in done.stdout

        done = run_cli(settings, [*args, "--from", SENDER], SSL_CERT_FILE=str(certificate[0]))
        assert done.returncode == 0, done.stderr
        assert len(inbox.received) == len(REACHABLE)  # a resend is a no-op
        assert "already sent" in done.stdout and "Unreachable" in done.stdout


def test_the_copy_comes_from_a_share_link_where_the_store_signs_one(tmp_path: Path) -> None:
    from jobs.csm.notices import copy_instructions

    bucket = Settings.from_env(duckdb_path=tmp_path / "w.duckdb", snapshot_root="s3://b/p")
    folder = Settings.from_env(duckdb_path=tmp_path / "w.duckdb", snapshot_root=tmp_path)
    link = copy_instructions(bucket, "d1", 2023)
    text = copy_instructions(folder, "d1", 2023)
    assert "a download link" in link and "link" not in text
    assert "eoy-reset" not in link + text  # words for a district administrator


def test_a_bad_address_skips_one_recipient_and_the_others_are_sent(
    districts: Settings, tmp_path: Path
) -> None:
    """A non-ASCII address, two addresses in one field, a line break in a name (issue 28,
    point 4): the bad recipient is skipped and named in one line, every other is sent."""
    with connect(districts) as wh:
        wh.execute(
            "update app.educators set email = 'ünï@example.org' where educator_id = 'ex1_e_never'"
        )
        wh.execute(
            "update app.educators set email = 'ex2.second@example.org, extra@example.org' "
            "where educator_id = 'ex2_e_active'"
        )
        wh.execute(
            "update app.educators set first_name = %s where educator_id = 'ex3_e_never'",
            ["Ann\r\nBcc: spy@evil.example"],
        )
        wh.execute(
            "update app.educators set first_name = 'Zoë', email = 'ex5.admin@bücher.example' "
            "where educator_id = 'ex5_e_never'"
        )
    out = tmp_path / "notices"
    with local_smtp() as inbox:
        args = ["notices", "--as-of", "2023-06-01", "--out", str(out), "--send", "--json"]
        args += ["--smtp-host", "127.0.0.1", "--smtp-port", str(inbox.port), "--from", SENDER]
        done = run_cli(districts, args)
        assert done.returncode == 0, done.stderr
        doc = json.loads(done.stdout)
        received = {r.message["X-EOY-District"]: r for r in inbox.received}
    warnings = done.stderr.strip().splitlines()
    assert warnings == [
        "eoy-reset: warning: district 'ex1': administrator 'ex1_e_never' skipped, the email "
        "has non-ASCII characters before the @ (SMTPUTF8 is not used); correct the email in "
        "the roster",
        "eoy-reset: warning: district 'ex2': administrator 'ex2_e_active' skipped, the email "
        "field holds 2 addresses, not one; correct the email in the roster",
    ]
    assert "example.org" not in done.stderr  # named by educator id, never by address
    assert [(s["district_id"], s["educator_id"]) for s in doc["skipped_recipients"]] == [
        ("ex1", "ex1_e_never"),
        ("ex2", "ex2_e_active"),
    ]
    assert sorted(received) == sorted(d for d in REACHABLE if d != "ex1")
    assert received["ex2"].rcpt_tos == [admin("ex2")]
    assert received["ex5"].rcpt_tos == ["ex5.admin@xn--bcher-kva.example"]
    assert str(received["ex5"].message["To"]) == "Zoë F <ex5.admin@xn--bcher-kva.example>"
    three = received["ex3"]
    assert three.rcpt_tos == [admin("ex3")] and three.message["Bcc"] is None
    # the name on one line, quoted: no header can be smuggled in through it
    assert str(three.message["To"]) == f'"Ann Bcc: spy@evil.example F" <{admin("ex3")}>'
    assert b"\r\nBcc:" not in three.data
    by_id = {n["district_id"]: n for n in doc["notices"]}
    assert by_id["ex1"]["status"] == "unreachable" and by_id["ex2"]["recipients"] == 1
    with connect(districts) as wh:
        counted = dict(wh.query("select district_id, recipients from eoy_runner.notices_sent"))
    assert counted["ex2"] == 1 and "ex1" not in counted


def test_the_command_logs_in_over_starttls(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    """--smtp-user with the password from EOY_SMTP_PASSWORD, over STARTTLS, against a server
    that takes mail only after that login (issue 33); the password is never written."""
    password = "s3cret pass'word"
    settings = Settings(
        target="duckdb", duckdb_path=tmp_path / "w.duckdb", snapshot_root=tmp_path / "s"
    )
    with connect(settings, create=True, require_init=False) as wh:
        init_warehouse(wh)
        load(wh)
    out = tmp_path / "notices"
    trust = {"SSL_CERT_FILE": str(certificate[0])}
    with local_smtp(certificate, login=("csm", password)) as inbox:
        args = ["notices", "--as-of", "2023-06-01", "--out", str(out), "--send", "--from", SENDER]
        args += ["--smtp-host", "127.0.0.1", "--smtp-port", str(inbox.port), "--starttls"]
        said = [run_cli(settings, [*args, "--smtp-user", "csm"], **trust)]
        one_line_error(said[-1], "--smtp-user csm needs the password in EOY_SMTP_PASSWORD")
        said.append(
            run_cli(settings, [*args, "--smtp-user", "csm"], EOY_SMTP_PASSWORD="wrong", **trust)
        )
        one_line_error(said[-1], "refused the login of 'csm'", "EOY_SMTP_PASSWORD")
        said.append(run_cli(settings, args, **trust))  # no login: the server refuses mail
        one_line_error(said[-1], "could not send the notice of district 'ex1'")
        assert inbox.received == []
        with local_smtp() as plain:
            plain_args = [a if a != str(inbox.port) else str(plain.port) for a in args]
            said.append(run_cli(settings, plain_args))
            one_line_error(said[-1], "does not offer STARTTLS, which --starttls requires")
            no_tls = [a for a in plain_args if a != "--starttls"]
            said.append(run_cli(settings, [*no_tls, "--smtp-user", "csm"], EOY_SMTP_PASSWORD="x"))
            one_line_error(said[-1], "would cross the network in clear")
            assert plain.received == []
        said.append(
            run_cli(settings, [*args, "--smtp-user", "csm"], EOY_SMTP_PASSWORD=password, **trust)
        )
        assert said[-1].returncode == 0, said[-1].stderr
        assert len(inbox.received) == len(REACHABLE)
        assert all(r.tls and r.login == "csm" for r in inbox.received)
    written = [p.read_bytes() for p in out.rglob("*.eml")]
    with connect(settings) as wh:
        ledger = repr(wh.query("select * from eoy_runner.notices_sent"))
    for text in [*(d.stdout + d.stderr for d in said), ledger, *map(repr, written)]:
        assert password not in text and "s3cret" not in text


def one_line_error(done: Any, *needles: str) -> None:
    assert done.returncode != 0, done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("eoy-reset: "), done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
