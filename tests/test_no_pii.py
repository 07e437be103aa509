"""No student PII outside `app` and the snapshots: after a whole reset, scan what the
commands print, the ledger, the report and every relation dbt materialised or exposes to
analysts for the generated students' usernames and full names (issue: reliability, item 6)."""

from __future__ import annotations

from pathlib import Path

from jobs.config import Settings
from jobs.generate import generate_districts
from jobs.warehouse import Warehouse, connect
from tests.crash_helpers import run_cli


def eoy(settings: Settings, *args: str) -> str:
    done = run_cli(settings, list(args))
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def relation_text(wh: Warehouse, schema: str, name: str) -> str:
    rows = wh.query(f'select * from "{schema}"."{name}"')
    return "\n".join("|".join("" if v is None else str(v) for v in row) for row in rows)


def test_no_student_pii_outside_app_and_snapshots(
    settings: Settings, wh: Warehouse, tmp_path: Path
) -> None:
    generate_districts(wh, 6, seed=5, students_per_district=4, show_progress=False)
    students = wh.query("select username, first_name, last_name from app.students")
    needles = {u for u, _, _ in students} | {f"{f} {last}" for _, f, last in students}
    assert len(needles) > 10
    wh.close()

    report = tmp_path / "report.html"
    printed = "\n".join(
        [
            eoy(settings, "plan", "--as-of", "2023-07-28", "--json"),
            eoy(settings, "plan", "--as-of", "2023-07-28"),
            eoy(settings, "run", "--as-of", "2023-07-28", "--yes", "--json"),
            eoy(settings, "status", "--school-year", "2023", "--json"),
            eoy(settings, "report", "--html", str(report), "--as-of", "2023-07-28"),
        ]
    )
    texts = {"command output": printed, "report": report.read_text()}
    with connect(settings) as w:
        assert w.scalar("select count(*) from eoy_runner.reset_runs where status = 'completed'") > 0
        texts["reset_runs"] = relation_text(w, "eoy_runner", "reset_runs")
        texts["reset_events"] = relation_text(w, "eoy_runner", "reset_events")
        relations = w.query(
            "select table_schema, table_name, table_type from information_schema.tables "
            "where table_schema in ('eoy', 'eoy_audit')"
        )
        assert relations
        for schema, name, kind in relations:
            if schema == "eoy" and name.startswith("stg_"):
                # staging is a view over app: it exposes, never stores, student rows
                assert "VIEW" in kind.upper(), f"{schema}.{name} keeps a copy of student rows"
                continue
            texts[f"{schema}.{name}"] = relation_text(w, schema, name)
    for where, text in texts.items():
        leaked = sorted(n for n in needles if n in text)
        assert not leaked, f"student PII in {where}: {leaked[:3]}"
