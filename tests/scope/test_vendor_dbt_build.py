"""A vendor's own `dbt build`, with eoy-reset installed as a package (tests/vendor/project):
the demo's `app` sources, their staging and their tests are disabled there, and every model
the package brings, the audit views too, builds on the vendor's schema `sis`, whose tables
have no `product` column and few of the demo's timestamps; the demo's educators are none."""

from __future__ import annotations

from pathlib import Path

import pytest
from dbt.cli.main import dbtRunner

from tests.conftest import make_settings
from tests.support.in_process import close_dbt_duckdb
from tests.vendor import DELETED, load
from tests.vendor.helpers import AS_OF, copy_project, eoy, warehouse


def dbt(project: Path, logs: Path, *args: str) -> list[str]:
    """A dbt command in the vendor project; the names of what it listed or built."""
    done = dbtRunner().invoke(
        [
            *args,
            *("--project-dir", str(project), "--profiles-dir", str(project)),
            *("--log-path", str(logs), "--quiet"),
        ]
    )
    close_dbt_duckdb()
    assert done.success, f"dbt {args[0]} failed: {done.exception or done.result}"
    if args[0] == "ls":
        return [str(r) for r in done.result]
    return [r.node.name for r in done.result or []]  # deps has no result


def test_a_vendors_dbt_build_has_none_of_the_demo(
    target: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = copy_project(tmp_path / "project")
    logs = tmp_path / "dbt-logs"
    for settings in make_settings(target, tmp_path, request, own_place=True):
        assert eoy(settings, project, "init").returncode == 0
        with warehouse(settings) as wh:
            load(wh, 3, seed=11, learners_per_district=4)
        monkeypatch.setenv("EOY_TARGET", settings.target)
        for name, value in settings.dbt_env().items():
            monkeypatch.setenv(name, value)
        dbt(project, logs, "deps")

        sources = dbt(project, logs, "ls", "--resource-type", "source", "--output", "name")
        assert sources and not [s for s in sources if s.startswith("app.")], sources
        models = dbt(project, logs, "ls", "--resource-type", "model", "--output", "name")
        assert "stg_app__students" not in models and "audit_student_rows_by_day" in models

        built = dbt(project, logs, "build", "--vars", f"{{as_of_date: '{AS_OF}'}}")
        assert "audit_student_rows_by_day" in built and "audit_retention_violations" in built
        # a second build finds the rows: models the first one may have reached after the views
        dbt(project, logs, "run", "--select", "fqn:eoy_reset.marts.audit")

        with warehouse(settings) as wh:
            counted = dict(
                wh.query(
                    "select table_name, sum(row_count) "
                    "from analytics_audit.audit_student_rows_by_day group by table_name"
                )
            )
            # every declared deleted table with rows is counted, through its owners
            expected = {t: int(wh.scalar(f"select count(*) from sis.{t}")) for t in DELETED}
            assert set(counted) == {t for t, n in expected.items() if n}, counted
            assert int(wh.scalar("select count(*) from analytics.educator_contacts")) == 0
            assert int(wh.scalar("select count(*) from analytics.inactive_educators")) == 0
            notices = wh.query("select student_rows, rows_by_table from analytics.reset_notices")
            assert notices and all(int(n) > 0 and "=" in by for n, by in notices), notices
