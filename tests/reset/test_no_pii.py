"""No student PII outside `app` and the snapshots' data files: after a whole reset, and after
runs that fail or are refused, scan what the commands print, the ledger, the report, every
relation dbt materialised or exposes to analysts, and every file the commands wrote (snapshot
manifests, plan files, dbt's logs/ and target/) for the generated students' usernames and
full names (issue: reliability, item 6).

The certificates a district is given (their files, the ledger's copies, the post-reset
notices that carry them) are scanned too.

`app.students` has no email column and the generator makes no student email; an address made
from a username would hold the username, which is scanned.
"""

from __future__ import annotations

import email
import email.policy
import html
import json
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from jobs.config import Settings
from jobs.plan.dbt import dbt_work_dir
from jobs.snapshot.layout import district_dir
from jobs.synthetic.generate import generate_districts
from jobs.warehouse.connection import Warehouse, connect
from tests.conftest import make_settings
from tests.support.crash_helpers import run_cli
from tests.support.smtp_server import local_smtp

AS_OF = "2023-07-28"
YEAR = 2023


@pytest.fixture
def settings(target: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Settings]:
    """The warehouse, and so dbt's logs/ and target/, in tmp_path: every file there is scanned."""
    yield from make_settings(target, tmp_path, request, own_place=True)


def eoy(settings: Settings, *args: str, ok: bool = True, env: dict[str, str] | None = None) -> str:
    done = run_cli(settings, list(args), **(env or {}))
    assert (done.returncode == 0) is ok, (args, done.stdout, done.stderr)
    return done.stdout + done.stderr


def student_pii(wh: Warehouse) -> set[str]:
    """Usernames and full names ("First Last", "Last, First") of every student.

    A full name an educator also has is left out: educators' names are not student data."""
    students = wh.query("select username, first_name, last_name from app.students")
    educators = {
        f"{f} {last}" for f, last in wh.query("select first_name, last_name from app.educators")
    }
    names = {f"{f} {last}" for _, f, last in students if f"{f} {last}" not in educators}
    names |= {f"{last}, {f}" for _, f, last in students if f"{f} {last}" not in educators}
    needles = {u for u, _, _ in students} | names
    assert len(needles) > 20 and any(not n.isascii() for n in needles)
    return needles


def spellings(needle: str) -> set[bytes]:
    """The needle as UTF-8, and as JSON and HTML write it (ü as \\u00fc, ' as &#x27;)."""
    forms = {needle, json.dumps(needle)[1:-1], html.escape(needle), html.escape(needle, False)}
    return {f.encode("utf-8") for f in forms}


def assert_no_pii(needles: set[str], found: dict[str, bytes | str]) -> None:
    patterns = {n: spellings(n) for n in needles}
    for where, content in found.items():
        data = content.encode("utf-8") if isinstance(content, str) else content
        leaked = sorted(n for n, forms in patterns.items() if any(f in data for f in forms))
        assert not leaked, f"student PII in {where}: {leaked[:3]}"


def written_files(root: Path, settings: Settings) -> dict[str, bytes]:
    """Every file under root (text or binary) but the warehouse itself and the snapshots'
    data files, which hold student rows by design."""
    warehouse = Path(settings.duckdb_path).name
    skip = {warehouse, f"{warehouse}.wal"}
    out = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.name in skip or path.suffix == ".parquet":
            continue
        out[str(path.relative_to(root))] = path.read_bytes()
    return out


def relation_text(wh: Warehouse, schema: str, name: str) -> str:
    rows = wh.query(f'select * from "{schema}"."{name}"')
    return "\n".join("|".join("" if v is None else str(v) for v in row) for row in rows)


def ledger_texts(wh: Warehouse) -> dict[str, str]:
    return {
        "reset_runs": relation_text(wh, "eoy_runner", "reset_runs"),
        "reset_events": relation_text(wh, "eoy_runner", "reset_events"),
        "reset_request_changes": relation_text(wh, "eoy_runner", "reset_request_changes"),
        "notices_sent": relation_text(wh, "eoy_runner", "notices_sent"),
        "certificates": relation_text(wh, "eoy_runner", "certificates"),
        "certificate_notices_sent": relation_text(wh, "eoy_runner", "certificate_notices_sent"),
    }


def dbt_files(settings: Settings, root: Path, files: dict[str, bytes]) -> set[str]:
    """dbt's own files among those scanned: its log, its parse cache, compiled SQL, and the
    manifest the declared scope is read from (the commands ask dbt for no run_results.json);
    each of them is scanned for student data like every other file."""
    work = str(dbt_work_dir(settings).relative_to(root))
    mine = {f for f in files if f.startswith(work + "/")}
    for needed in ("logs/dbt.log", "target/partial_parse.msgpack", "target/manifest.json"):
        assert f"{work}/{needed}" in mine, f"dbt wrote no {needed}: {sorted(mine)[:5]}"
    assert f"{work}/target/run_results.json" not in mine, "dbt wrote target/run_results.json"
    assert any(f.startswith(f"{work}/target/compiled/") for f in mine)
    assert any(f.startswith(f"{work}/target/run/") for f in mine)
    return mine


def test_no_student_pii_outside_app_and_snapshots(
    settings: Settings, wh: Warehouse, tmp_path: Path
) -> None:
    generate_districts(wh, 6, seed=5, students_per_district=4, show_progress=False)
    needles = student_pii(wh)
    wh.close()

    plan, report = tmp_path / "plan.json", tmp_path / "report.html"
    printed = [
        eoy(settings, "plan", "--as-of", AS_OF, "--json"),
        eoy(settings, "plan", "--as-of", AS_OF),
        eoy(settings, "plan", "--as-of", AS_OF, "--out", str(plan)),
        eoy(settings, "approve", str(plan), "--by", "reviewer"),
        eoy(settings, "run", "--as-of", AS_OF, "--plan", str(plan), "--json"),
        eoy(settings, "status", "--school-year", str(YEAR), "--json"),
        eoy(settings, "status", "--school-year", str(YEAR)),
    ]
    with connect(settings) as w:
        done = "select district_id from eoy_runner.reset_runs where status = 'completed'"
        reset = [r[0] for r in w.query(done)]
        assert reset
    printed += certificates(settings, reset, tmp_path)
    printed.append(eoy(settings, "report", "--html", str(report), "--as-of", AS_OF))
    texts: dict[str, bytes | str] = {"command output": "\n".join(printed)}
    with connect(settings) as w:
        texts.update(ledger_texts(w))
        relations = w.query(
            "select table_schema, table_name, table_type from information_schema.tables "
            "where table_schema in ('eoy', 'eoy_audit')"
        )
        assert relations
        # staging is ephemeral: no relation of its own, let alone a copy of student rows
        assert not [name for _, name, _ in relations if name.startswith("stg_")], relations
        for schema, name, _ in relations:
            texts[f"{schema}.{name}"] = relation_text(w, schema, name)
    folder = district_dir(settings.snapshot_root, YEAR, reset[0])
    texts["verify-snapshot"] = eoy(settings, "verify-snapshot", str(folder))

    files = written_files(tmp_path, settings)
    for district in reset:
        manifest = district_dir(settings.snapshot_root, YEAR, district) / "manifest.json"
        assert str(manifest.relative_to(tmp_path)) in files
    assert "plan.json" in files and "report.html" in files
    assert sum(1 for f in files if f.endswith("certificate.json")) == len(reset)
    assert sum(1 for f in files if f.endswith("certificate.html")) == len(reset)
    dbt_files(settings, tmp_path, files)
    texts.update(files)
    assert_no_pii(needles, texts)


def certificates(settings: Settings, districts: list[str], tmp_path: Path) -> list[str]:
    """keygen, then each district's certificate of disposition, written and verified."""
    key = {"EOY_SIGNING_KEY": str(tmp_path / "keys" / "signing.key")}
    said = [eoy(settings, "keygen", "--out", str(tmp_path / "keys"))]
    for district in districts:
        out = tmp_path / "certificates" / district
        said.append(eoy(settings, "certificate", "--district", district, "--school-year",
                        str(YEAR), "--out", str(out), "--json", env=key))  # fmt: skip
        public = str(tmp_path / "keys" / "signing.pub")
        said.append(eoy(settings, "verify-certificate", str(out / "certificate.json"),
                        "--public-key", public, "--json"))  # fmt: skip
    return said


def test_no_student_pii_from_failed_or_refused_runs(
    settings: Settings, wh: Warehouse, tmp_path: Path
) -> None:
    generate_districts(wh, 6, seed=5, students_per_district=4, show_progress=False)
    needles = student_pii(wh)
    wh.close()

    plan, edited = tmp_path / "plan.json", tmp_path / "edited.json"
    printed = [eoy(settings, "plan", "--as-of", AS_OF, "--out", str(plan))]
    doc = json.loads(plan.read_text())
    doc["due"][0]["rows_total"] += 1
    edited.write_text(json.dumps(doc, indent=2))
    printed += [
        # refused: an edited plan, and no --plan, --yes or terminal
        eoy(settings, "run", "--as-of", AS_OF, "--plan", str(edited), ok=False),
        eoy(settings, "run", "--as-of", AS_OF, "--json", ok=False),
    ]
    with connect(settings) as w:
        assert w.scalar("select count(*) from eoy_runner.reset_runs") == 0
    # failed: the school year's folder under the snapshot root is a file, so every
    # district's snapshot fails (a root that is a file is refused before anything starts)
    root = tmp_path / "broken-root"
    root.mkdir()
    (root / str(YEAR)).write_text("a file where the school year's folder should be\n")
    broken = Settings(
        target=settings.target,
        duckdb_path=settings.duckdb_path,
        pg_dsn=settings.pg_dsn,
        snapshot_root=root,
    )
    printed.append(eoy(broken, "run", "--as-of", AS_OF, "--yes", ok=False))
    printed.append(eoy(broken, "status", "--school-year", str(YEAR), "--json"))

    texts: dict[str, bytes | str] = {"command output": "\n".join(printed)}
    with connect(settings) as w:
        failed = w.scalar("select count(*) from eoy_runner.reset_runs where status = 'failed'")
        assert failed > 0
        assert w.scalar("select count(*) from eoy_runner.reset_runs where status <> 'failed'") == 0
        texts.update(ledger_texts(w))
    files = written_files(tmp_path, settings)
    assert "plan.json" in files and "edited.json" in files
    dbt_files(settings, tmp_path, files)
    texts.update(files)
    assert_no_pii(needles, texts)


def test_no_student_pii_in_notices_or_the_request_history(
    settings: Settings, wh: Warehouse, tmp_path: Path
) -> None:
    """The CSM's side (issue 14): request-date's output and history, every notice written and
    every message the SMTP server received, the notices ledger and the models behind them."""
    generate_districts(wh, 6, seed=5, students_per_district=4, show_progress=False)
    needles = student_pii(wh)
    wh.close()

    notices, report = tmp_path / "notices", tmp_path / "report.html"
    day = "2023-06-01"
    with local_smtp() as inbox:
        printed = [
            eoy(settings, "request-date", "--district", "d00001", "--date", "2023-07-03",
                "--anyway", "--by", "csm"),
            eoy(settings, "request-date", "--district", "d00002", "--date", "2023-01-02",
                "--json", ok=False),
            eoy(settings, "notices", "--as-of", day, "--out", str(notices), "--json"),
            eoy(settings, "notices", "--as-of", day, "--out", str(notices), "--send",
                "--smtp-host", "127.0.0.1", "--smtp-port", str(inbox.port),
                "--from", "csm@vendor.example"),
            eoy(settings, "report", "--html", str(report), "--as-of", day),
        ]  # fmt: skip
        before = len(inbox.received)
        # the post-reset notice, its certificate attached, once the districts are reset
        printed += [
            eoy(settings, "run", "--as-of", AS_OF, "--yes", "--json"),
            eoy(settings, "keygen", "--out", str(tmp_path / "keys")),
            eoy(settings, "notices", "--as-of", AS_OF, "--out", str(notices), "--send",
                "--smtp-host", "127.0.0.1", "--smtp-port", str(inbox.port),
                "--from", "csm@vendor.example", "--json",
                env={"EOY_SIGNING_KEY": str(tmp_path / "keys" / "signing.key")}),
            # the run rebuilt the models under the audit views: the report builds them again
            eoy(settings, "report", "--html", str(report), "--as-of", AS_OF),
        ]  # fmt: skip
        received = {f"message {n}": r.data for n, r in enumerate(inbox.received, 1)}
    assert before >= 5  # every district but one with no administrator email, if any
    assert len(received) > before  # post-reset notices went
    texts: dict[str, bytes | str] = {"command output": "\n".join(printed), **received}
    with connect(settings) as w:
        texts.update(ledger_texts(w))
        assert texts["reset_request_changes"] and texts["notices_sent"]
        assert texts["certificates"] and texts["certificate_notices_sent"]
        for schema, name in [
            ("eoy", "reset_notices"),
            ("eoy", "reset_date_windows"),
            ("eoy_audit", "audit_notices"),
            ("eoy_audit", "audit_reset_date_changes"),
        ]:
            texts[f"{schema}.{name}"] = relation_text(w, schema, name)
    files = written_files(tmp_path, settings)
    assert sum(1 for f in files if f.endswith(".eml") and "post-reset" not in f) == 6
    assert any("post-reset" in f for f in files)
    texts.update(files)
    # a message's parts may be base64 or quoted-printable: scan them decoded too
    for where, data in list(texts.items()):
        if where.startswith("message ") or where.endswith(".eml"):
            texts[f"{where} (decoded)"] = decoded(data)
    assert_no_pii(needles, texts)


def decoded(data: bytes | str) -> str:
    """A message's headers and every text part, decoded."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    texts = [f"{k}: {v}" for k, v in message.items()]
    for part in message.walk():
        if part.get_content_maintype() == "text" or part.get_content_type() == "application/json":
            texts.append(part.get_payload(decode=True).decode("utf-8"))
    assert len(texts) > len(message.items())  # a text part was read
    return "\n".join(texts)
