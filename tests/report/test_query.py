"""Analysts run analyses/ as the README says (issue #16, item 7): `eoy-reset query NAME`
compiles an analysis and prints its rows; on PostgreSQL the eoy_analyst role can run every
compiled analysis."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from jobs.config import Settings
from jobs.report.query import analyses, analysis_vars, compiled_path
from tests.conftest import made_once
from tests.support import operator_data as od
from tests.support.operator_data import eoy, one_line

VARS = ["--var", "as_of_date=2023-07-28", "--var", "school_year=2023"]


def early_reset(settings: Settings) -> None:
    od.fresh(settings)
    done = eoy(settings, ["run", "--as-of", "2023-07-28", "--district", "early", "--yes"])
    assert done.returncode == 0, done.stderr


@pytest.fixture
def reset(target: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Settings]:
    """Early reset on 2023-07-28; default due and not reset; blocked and later not due (made
    once, copied)."""
    yield from made_once(target, tmp_path, request, "query_reset", early_reset)


def answer(settings: Settings, name: str) -> dict[str, Any]:
    """The analysis's document, with the vars of VARS it reads (any other is refused)."""
    given = [v for v in VARS[1::2] if v.split("=")[0] in analysis_vars(name)]
    proc = eoy(settings, ["query", name, *(a for v in given for a in ("--var", v)), "--json"])
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["ok"] is True and doc["query"] == name
    assert doc["totals"]["rows"] == len(doc["rows"])
    return doc


def test_every_analysis_answers(reset: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    import jobs.report.query as query

    compiles: list[list[str]] = []
    run_dbt = query.run_dbt

    def counted(settings: Settings, args: list[str], **kw: Any) -> Any:
        compiles.append(args[2:])
        return run_dbt(settings, args, **kw)

    # the commands run in this process: each query's compile is seen here
    monkeypatch.setattr(query, "run_dbt", counted)
    names = list(analyses())
    assert len(names) == 4
    listed = eoy(reset, ["query"])
    assert listed.returncode == 0 and all(n in listed.stdout for n in names)

    old = answer(reset, "districts_with_student_data_older_than_reset_date")
    # due and not reset, or blocked on its reset date: last year's rows are all still there
    tables = {(r["district_id"], r["table_name"]): r["old_rows"] for r in old["rows"]}
    assert {d for d, _ in tables} == {"blocked", "default"}
    assert tables[("default", "students")] == tables[("blocked", "students")] == 2
    assert {r["reset_status"] for r in old["rows"]} == {"blocked", "not_started"}
    assert answer(reset, "time_from_reset_to_resumed_sync")["rows"][0]["district_id"] == "early"
    last_week = answer(reset, "resets_last_week")
    assert last_week["rows"] == []  # the run finished today, not in the week to 2023-07-28
    assert "rows_deleted" in last_week["columns"]
    # one compile of every analysis served the three queries of the same vars
    assert compiles == [names], compiles

    # an analysis that reads no var: compiled once more (no vars), then kept
    per_product = answer(reset, "rows_deleted_per_product")
    assert sum(r["rows_deleted"] for r in per_product["rows"]) == 13
    for width in ("80", "160"):
        proc = eoy(reset, ["query", "rows_deleted_per_product"], COLUMNS=width)
        assert proc.returncode == 0, proc.stderr
        assert "…" not in proc.stdout and "students" in proc.stdout
        assert all(len(line) <= int(width) for line in proc.stdout.splitlines())
    assert compiles == [names, names], compiles

    # another day: compiled again, and answered for that day (the run finished today)
    today = date.today().isoformat()
    week = ["--var", f"as_of_date={today}", "--var", "school_year=2023", "--json"]
    proc = eoy(reset, ["query", "resets_last_week", *week])
    assert proc.returncode == 0, proc.stderr
    assert [r["district_id"] for r in json.loads(proc.stdout)["rows"]] == ["early"]
    assert len(compiles) == 3
    # SQL kept under another digest (another project, vars or warehouse) is never run
    kept = query.dbt_work_dir(reset) / query.ANALYSES_KEPT
    doc = json.loads(kept.read_text(encoding="utf-8"))
    doc["sql"]["resets_last_week"] = "select 'wrong' as district_id"
    kept.write_text(json.dumps({**doc, "key": "0" * 64}), encoding="utf-8")
    again = answer(reset, "resets_last_week")
    assert again["rows"] == [] and len(compiles) == 4


def test_bad_names_and_vars_are_one_line(reset: Settings) -> None:
    one_line(eoy(reset, ["query", "who_is_late"]), "no analysis named", "resets_last_week")
    one_line(eoy(reset, ["query", "resets_last_week", "--var", "soon"]), "NAME=VALUE")
    one_line(
        eoy(reset, ["query", "resets_last_week", "--var", "as_of_date=tomorrow"]),
        "as_of_date",
        "YYYY-MM-DD",
    )
    # a var the analysis does not read (a misspelt one, or one it has no use for) is refused
    one_line(
        eoy(reset, ["query", "resets_last_week", "--var", "as_of=2023-07-28"]),
        "--var as_of",
        "reads as_of_date",
    )
    one_line(
        eoy(reset, ["query", "rows_deleted_per_product", "--var", "school_year=2023"]),
        "--var school_year",
        "does not use it",
    )


def as_role(dsn: str, role: str) -> psycopg.Connection[Any]:
    parts = urlsplit(dsn)
    host = parts.netloc.rsplit("@", 1)[-1]
    return psycopg.connect(urlunsplit((parts.scheme, f"{role}@{host}", parts.path, "", "")))


@pytest.mark.parametrize("target", ["postgres"], indirect=True)
def test_the_analyst_role_runs_every_compiled_analysis(
    reset: Settings, pg_server_wide: None
) -> None:
    expected = {name: answer(reset, name) for name in analyses()}
    roles = eoy(reset, ["init", "--roles"])
    assert roles.returncode == 0, roles.stderr
    for name, doc in expected.items():
        sql = Path(compiled_path(reset, name)).read_text()
        with as_role(reset.pg_dsn or "", "eoy_analyst") as con:
            rows = con.execute(sql.encode()).fetchall()
            assert len(rows) == len(doc["rows"]), name
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                con.execute("select count(*) from app.students")
