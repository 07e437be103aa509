"""A vendor's warehouse nothing like `app` (tests/vendor: schema `sis`, integer ids, ownership
through campuses, sections and parents, a polymorphic owner through a dbt model), reset by
eoy-reset installed as a dbt package in the vendor's own project (`--project-dir`), on both
targets: the plan (rows per district, unowned rows), each refusal of an incomplete or wrong
declaration in one line with nothing changed, a run of some districts and then of the rest
(a learner enrolled in two districts in both snapshots, gone only with its last owner),
verified snapshots, a restore, and a run killed at its crash points finished by running
again."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from jobs.config import Settings
from jobs.warehouse.connection import Warehouse, connect
from tests.conftest import (
    TARGETS,
    create_pg_database,
    drop_pg_database,
    make_settings,
)
from tests.support.crash_helpers import Pristine
from tests.support.in_process import counted_parses
from tests.vendor import DELETED, RETAINED, VendorData, load
from tests.vendor.helpers import (
    AS_OF,
    YEAR,
    copy_project,
    dump,
    eoy,
    eoy_json,
    installed,
    one_line,
    ready_project,
    snapshot_folder,
    snapshot_rows,
    start_eoy,
    warehouse,
)
from tests.vendor.schema import BY_NAME, KEYS

DISTRICTS, SEED, LEARNERS = 4, 7, 5
RUN = ("run", "--as-of", AS_OF, "--yes")
Rows = dict[str, list[Any]]


@pytest.fixture(scope="session")
def project(run_root: Path) -> Path:
    return ready_project(run_root / "vendor-project.lock")


def init_and_load(settings: Settings, project: Path) -> VendorData:
    """`init` in the vendor project (eoy-reset's own schema only), then schema sis filled."""
    done = eoy(settings, project, "init")
    assert done.returncode == 0, done.stderr
    with warehouse(settings) as wh:
        return load(wh, DISTRICTS, seed=SEED, learners_per_district=LEARNERS)


@dataclass
class Vendor:
    settings: Settings
    project: Path
    data: VendorData


@pytest.fixture
def vendor(
    target: str, tmp_path: Path, request: pytest.FixtureRequest, project: Path
) -> Iterator[Vendor]:
    """Schema sis with four org units on an initialised warehouse of each target."""
    for settings in make_settings(target, tmp_path, request, own_place=True):
        yield Vendor(settings, project, init_and_load(settings, project))


def test_init_in_a_vendor_project_makes_eoy_runner_only(
    target: str, tmp_path: Path, request: pytest.FixtureRequest, project: Path
) -> None:
    for settings in make_settings(target, tmp_path, request, own_place=True):
        done = eoy(settings, project, "init")
        assert done.returncode == 0, done.stderr
        with warehouse(settings) as wh:
            assert wh.schema_exists("eoy_runner")
            assert not wh.schema_exists("app"), "init in a vendor's project made the demo's app"


# ---------------------------------------------------------------------------------------
# what the tests compare
# ---------------------------------------------------------------------------------------
def key_of(table: str, row: tuple[Any, ...]) -> tuple[Any, ...]:
    cols = [c for c, _, _ in BY_NAME[table].columns]
    return tuple(row[cols.index(k)] for k in KEYS[table])


def expected_left(before: Rows, snaps: dict[int, Rows], done: set[int], data: VendorData) -> Rows:
    """The rows of `before` a reset of the districts `done` leaves: those of their snapshots
    go, unless another owner of the row (a shared row) is not done."""
    left = {}
    for table in DELETED:
        gone = set()
        for district, snap in snaps.items():
            for row in snap[table]:
                owners = data.shared[table].get(key_of(table, row), frozenset([district]))
                if owners <= done:
                    gone.add(row)
        left[table] = [r for r in before[table] if r not in gone]
    return left


def unowned_of(plan: dict[str, Any]) -> dict[str, int]:
    """The plan's unowned rows per table (at its top level, or among its totals)."""
    found = plan.get("unowned", plan.get("totals", {}).get("unowned"))
    assert isinstance(found, dict), f"the plan counts no unowned rows: {sorted(plan)}"
    return {str(t): int(n) for t, n in found.items()}


def shared_learners(data: VendorData) -> dict[tuple[Any, ...], frozenset[int]]:
    assert data.shared["learners"], "the generator made no learner of two districts"
    return data.shared["learners"]


def verified(settings: Settings, project: Path, district: int) -> Rows:
    """The district's snapshot, at `<root>/2023/<id as text>`, checked by verify-snapshot."""
    folder = snapshot_folder(settings, district)
    assert (folder / "manifest.json").is_file(), f"no snapshot of {district} at {folder}"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert str(manifest["district_id"]) == str(district)
    done = eoy(settings, project, "verify-snapshot", str(folder))
    assert done.returncode == 0, f"verify-snapshot {folder}: {done.stdout} {done.stderr}"
    return snapshot_rows(folder)


def test_the_next_years_rostering_closes_the_year_in_eoy_runners_own_table(
    vendor: Vendor,
) -> None:
    """A project that declares no rostering: eoy-reset keeps it in eoy_runner.rostering_runs
    and says so; a 2024 rostering there closes 2023 for that org unit like a declared one."""
    settings, project, data = vendor.settings, vendor.project, vendor.data
    closed, other = data.districts[0], data.districts[1]
    with warehouse(settings) as wh:
        wh.execute(
            "insert into eoy_runner.rostering_runs (district_id, school_year, completed_at) "
            "values (%s, 2024, timestamp '2023-07-20 09:00:00')",
            [str(closed)],
        )
        before = dump(wh)

    plan = eoy_json(settings, project, "plan", "--as-of", AS_OF)
    assert plan["roles"]["rostering"] == "none declared; kept in eoy_runner.rostering_runs"
    (shut,) = plan["closed"]
    assert str(shut["district_id"]) == str(closed)
    assert "rostering for 2024 completed on 2023-07-20" in shut["reason"]
    assert str(closed) not in {str(d["district_id"]) for d in plan["due"]}

    named = eoy(settings, project, *RUN, "--district", str(closed))
    assert named.returncode == 1
    assert "school year 2023 is closed" in named.stderr and len(named.stderr.splitlines()) == 1
    with warehouse(settings) as wh:
        assert dump(wh) == before, "a closed year's run changed the warehouse"

    done = eoy_json(settings, project, *RUN, "--district", str(other))
    assert [(str(d["district_id"]), d["status"]) for d in done["districts"]] == [
        (str(other), "completed")
    ]


@pytest.mark.parametrize("target", ["duckdb"])
def test_a_command_runs_on_the_parse_an_earlier_command_kept(
    vendor: Vendor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dbt's own partial parse cannot read back the parse of a project whose sources' meta
    has `on:` (YAML reads it as a boolean key): the parse the first command kept serves the
    next process, which parses nothing."""
    import jobs.plan.dbt as dbt

    settings = vendor.settings
    project = copy_project(Path(settings.duckdb_path).parent / "project")  # one it may change
    first = eoy_json(settings, project, "plan", "--as-of", AS_OF)
    parses = counted_parses(monkeypatch)  # from here on, as a new process
    assert eoy_json(settings, project, "plan", "--as-of", AS_OF)["due"] == first["due"]
    assert parses == []
    # a file of the project changed: parsed again
    model = project / "models" / "ownership" / "learner_districts.sql"
    model.write_text(model.read_text() + "\n-- changed\n")
    monkeypatch.setattr(dbt, "_MANIFESTS", type(dbt._MANIFESTS)())
    assert eoy_json(settings, project, "plan", "--as-of", AS_OF)["due"] == first["due"]
    assert parses == ["sis_vendor"]


# ---------------------------------------------------------------------------------------
# the whole life
# ---------------------------------------------------------------------------------------
def test_plan_run_some_then_the_rest_and_restore(vendor: Vendor) -> None:
    settings, project, data = vendor.settings, vendor.project, vendor.data
    ids = data.districts

    plan = eoy_json(settings, project, "plan", "--as-of", AS_OF)
    due = {str(d["district_id"]): d["rows"] for d in plan["due"]}
    assert set(due) == {str(d) for d in ids}, "every org unit is due on the default date"
    for d in ids:
        assert due[str(d)] == {t: data.owned[t].get(d, 0) for t in DELETED}, d
    unowned = unowned_of(plan)
    assert {t: unowned.get(t, 0) for t in DELETED} == data.unowned
    assert all(data.unowned[t] for t in ("learners", "sections", "attempt_items", "notes"))

    with warehouse(settings) as wh:
        before = dump(wh)

    # org units 101 and 103: each shares a learner with 102 and 104, which stay
    first = {ids[0], ids[2]}
    args = [a for d in sorted(first) for a in ("--district", str(d))]
    result = eoy_json(settings, project, *RUN, *args)
    assert {str(d["district_id"]): d["status"] for d in result["districts"]} == {
        str(d): "completed" for d in first
    }
    snaps = {d: verified(settings, project, d) for d in first}
    for d in first:
        assert {t: len(snaps[d][t]) for t in DELETED} == {
            t: data.owned[t].get(d, 0) for t in DELETED
        }
    with warehouse(settings) as wh:
        after_first = dump(wh)
    assert {t: after_first[t] for t in RETAINED} == {t: before[t] for t in RETAINED}
    assert {t: after_first[t] for t in DELETED} == expected_left(before, snaps, first, data)
    shared = shared_learners(data)
    for key, owners in shared.items():
        (mine,) = owners & first
        assert key in {key_of("learners", r) for r in snaps[mine]["learners"]}
        assert key in {key_of("learners", r) for r in after_first["learners"]}, (
            f"learner {key} was deleted while {sorted(owners - first)} had not been reset"
        )

    # the rest: what is left of each shared row goes with its last owner
    rest = eoy_json(settings, project, *RUN)
    assert {str(d["district_id"]) for d in rest["districts"]} == {str(d) for d in set(ids) - first}
    assert all(d["status"] == "completed" for d in rest["districts"])
    snaps.update({d: verified(settings, project, d) for d in set(ids) - first})
    with warehouse(settings) as wh:
        after_all = dump(wh)
    assert {t: after_all[t] for t in RETAINED} == {t: before[t] for t in RETAINED}
    assert {t: len(after_all[t]) for t in DELETED} == data.unowned, "only unowned rows stay"
    assert {t: after_all[t] for t in DELETED} == expected_left(before, snaps, set(ids), data)
    for key, owners in shared.items():
        holding = {d for d in ids if key in {key_of("learners", r) for r in snaps[d]["learners"]}}
        assert holding == owners, f"learner {key} is in the snapshots of {sorted(holding)}"
        assert key not in {key_of("learners", r) for r in after_all["learners"]}
    for table, rows in data.shared.items():
        for key, owners in rows.items():
            for d in owners:
                assert key in {key_of(table, r) for r in snaps[d][table]}, (table, key, d)

    # the district's copy comes from its snapshot; status lists every org unit's reset
    out = Path(settings.snapshot_root).parent / "copy"
    copied = eoy(
        settings,
        project,
        "export",
        "--district",
        str(ids[1]),
        "--school-year",
        str(YEAR),
        "--format",
        "parquet",
        "--out",
        str(out),
    )
    assert copied.returncode == 0, copied.stderr
    with zipfile.ZipFile(out / f"{ids[1]}_{YEAR}_parquet.zip") as zf:
        for table in DELETED:
            got = pq.read_table(io.BytesIO(zf.read(f"{table}.parquet")))
            assert got.num_rows == len(snaps[ids[1]][table]), table
    status = eoy_json(settings, project, "status")
    assert all(str(d) in json.dumps(status) for d in ids)

    # restore: every row of 101's snapshot back, parents first (PostgreSQL checks its keys)
    back = eoy(settings, project, "restore", "--district", str(ids[0]), "--school-year", "2023")
    assert back.returncode == 0, back.stderr
    with warehouse(settings) as wh:
        restored = dump(wh)
    assert {t: restored[t] for t in RETAINED} == {t: before[t] for t in RETAINED}
    for table in DELETED:
        wanted = set(after_all[table]) | set(snaps[ids[0]][table])
        assert set(restored[table]) == wanted, table
        assert set(restored[table]) <= set(before[table])


def test_a_restore_beside_an_owner_not_yet_reset_leaves_the_rows_kept_for_it(
    vendor: Vendor,
) -> None:
    """101 is reset while 102, which shares a learner with it, is not: the learner and the
    rows reached through it stay for 102. Restoring 101 puts back every other row of its
    snapshot and leaves those as 102 has them now, a value changed since included; a row
    of 101's own written again since stops the restore, with nothing changed."""
    settings, project, data = vendor.settings, vendor.project, vendor.data
    first = data.districts[0]
    (learner,) = next(key for key, owners in shared_learners(data).items() if first in owners)

    with warehouse(settings) as wh:
        before = dump(wh)
    done = eoy_json(settings, project, *RUN, "--district", str(first))
    assert [d["status"] for d in done["districts"]] == ["completed"]
    snap = verified(settings, project, first)
    with warehouse(settings) as wh:
        wh.execute(
            "update sis.learners set given_name = 'renamed' where learner_id = %s", [learner]
        )
        live = dump(wh)
    # the snapshot's rows still there are those another org unit owns too
    kept = {
        t: [r for r in snap[t] if key_of(t, r) in {key_of(t, x) for x in live[t]}] for t in DELETED
    }
    for table in DELETED:
        assert {key_of(table, r) for r in kept[table]} == {
            key for key in data.shared[table] if first in data.shared[table][key]
        }, table
    assert kept["learners"]

    # one of 101's own learners written again by hand: refused, one line, nothing changed
    own = next(r for r in snap["learners"] if r not in kept["learners"])
    columns = ", ".join(["%s"] * len(own))
    with warehouse(settings) as wh:
        wh.execute(f"insert into sis.learners values ({columns})", list(own))
    refused = eoy(settings, project, "restore", "--district", str(first), "--school-year", "2023")
    assert refused.returncode != 0
    assert "rows of sis.learners" in refused.stderr and "exist already" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    with warehouse(settings) as wh:
        now = dump(wh)
        assert {t: now[t] for t in now if t != "learners"} == {
            t: live[t] for t in now if t != "learners"
        }
        assert set(now["learners"]) == {*live["learners"], own}
        wh.execute("delete from sis.learners where learner_id = %s", [key_of("learners", own)[0]])

    back = eoy_json(settings, project, "restore", "--district", str(first), "--school-year", "2023")
    assert back["rows_kept_for_other_owners"] == {t: len(r) for t, r in kept.items() if r}
    assert back["rows_restored"] == sum(len(snap[t]) - len(kept[t]) for t in DELETED)
    with warehouse(settings) as wh:
        restored = dump(wh)
    for table in DELETED + RETAINED:
        gone = set(snap.get(table, [])) - set(kept.get(table, []))
        assert set(restored[table]) == set(live[table]) | gone, table
        assert len(restored[table]) == len(before[table]), table
    renamed = next(r for r in restored["learners"] if key_of("learners", r) == (learner,))
    assert renamed[1] == "renamed", "the restore put back the snapshot's values over 102's"


# ---------------------------------------------------------------------------------------
# refusals, one line each, nothing changed
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Edit:
    """In the sources YAML, within table `table`'s declaration: `old` becomes `new`, or,
    when `old` is None, the whole declaration goes."""

    table: str
    old: str | None
    new: str = ""


@dataclass(frozen=True)
class Case:
    what: str
    words: tuple[str, ...]  # what the one line must name
    edits: tuple[Edit, ...] = ()
    sql: tuple[str, ...] = ()
    undo: tuple[str, ...] = ()
    run_too: bool = False


AWARDS = """      - name: awards
        meta:
          eoy_reset: {action: retain}
"""
CASES = [
    Case("a declaration dropped", ("guardians",), edits=(Edit("guardians", None),)),
    Case(
        "an undeclared table",
        ("learner_photos",),
        sql=("create table sis.learner_photos (learner_id integer, photo text)",),
        undo=("drop table sis.learner_photos",),
        run_too=True,
    ),
    Case(
        "a foreign key from a retained table to a deleted one",
        ("awards", "learners"),
        edits=(Edit("terms", "      - name: terms\n", AWARDS + "      - name: terms\n"),),
        sql=(
            "create table sis.awards (award_id integer primary key, "
            "learner_id integer references sis.learners (learner_id))",
        ),
        undo=("drop table sis.awards",),
        run_too=True,
    ),
    Case(
        "a key column that does not exist",
        ("daily_usage", "used_at"),
        edits=(Edit("daily_usage", "product, used_on]", "product, used_at]"),),
    ),
    Case(
        "no key where the warehouse has none",
        ("notes",),
        edits=(Edit("notes", "            key: [note_id]\n", ""),),
    ),
    Case(
        "a district column that does not exist",
        ("daily_usage", "district_id"),
        edits=(Edit("daily_usage", "district: org_unit_id", "district: district_id"),),
    ),
    Case(
        "a path step to a table that does not exist",
        ("classes",),
        edits=(Edit("section_rosters", "- table: sections", "- table: classes"),),
    ),
    Case(
        "a path step on a column that does not exist",
        ("site_id",),
        edits=(Edit("learner_enrolments", "{campus_id: campus_id}", "{campus_id: site_id}"),),
    ),
    Case(
        "a parent that does not exist",
        ("tries",),
        edits=(Edit("attempt_items", "table: attempts", "table: tries"),),
    ),
    Case(
        "a model that does not exist",
        ("note_owners",),
        edits=(Edit("notes", "rows: note_districts", "rows: note_owners"),),
    ),
    Case(
        "a cycle of deletes",
        ("attempts", "attempt_items"),
        edits=(
            Edit("attempts", "table: sections", "table: attempt_items"),
            Edit(
                "attempts",
                "{campus_id: campus_id, section_code: section_code, term_code: term_code}",
                "{attempt_id: attempt_id}",
            ),
        ),
        run_too=True,
    ),
    Case(
        "two districts tables",
        ("org_units", "campuses"),
        edits=(Edit("campuses", "{action: retain}", "{role: districts, key: campus_id}"),),
    ),
]


def edited(text: str, edit: Edit) -> str:
    start = text.index(f"      - name: {edit.table}\n")
    end = text.find("      - name: ", start + 1)
    end = len(text) if end < 0 else end
    block = text[start:end]
    if edit.old is None:
        return text[:start] + text[end:]
    assert edit.old in block, f"{edit.old!r} is not in {edit.table}'s declaration"
    return text[:start] + block.replace(edit.old, edit.new, 1) + text[end:]


@dataclass
class Refusing:
    """A loaded warehouse and a copy of the vendor project the cases change and put back."""

    settings: Settings
    project: Path
    sources: Path
    pristine: str
    before: Rows = field(default_factory=dict)


@pytest.fixture(scope="module")
def refusing(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Callable[[str], Refusing]]:
    made: dict[str, Refusing] = {}
    databases: list[tuple[str, str]] = []

    def of(target: str) -> Refusing:
        if target in made:
            return made[target]
        root = tmp_path_factory.mktemp(f"vendor-refusals-{target}")
        dsn = None
        if target == "postgres":
            base = request.getfixturevalue("pg_base_dsn")
            dsn = create_pg_database(base)
            databases.append((base, dsn))
        settings = Settings(
            target=target,
            duckdb_path=root / "warehouse.duckdb",
            pg_dsn=dsn,
            snapshot_root=root / "snapshots",
        )
        project = ready_project(root / "deps.lock", copy_project(root / "project"))
        init_and_load(settings, project)
        sources = project / "models" / "staging" / "sis" / "_sis__sources.yml"
        made[target] = Refusing(settings, project, sources, sources.read_text())
        with warehouse(settings) as wh:
            made[target].before = dump(wh)
        plan = eoy(settings, project, "plan", "--as-of", AS_OF, "--json")
        assert plan.returncode == 0, f"the vendor project as written is refused: {plan.stderr}"
        return made[target]

    yield of
    for base, dsn in databases:
        drop_pg_database(base, dsn)


def test_a_project_without_the_package_installed_gets_it(
    target: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A fresh checkout of the vendor's project has no dbt_packages: eoy-reset runs dbt deps."""
    project = copy_project(tmp_path / "project")
    assert not installed(project)
    for settings in make_settings(target, tmp_path, request, own_place=True):
        init_and_load(settings, project)
        done = eoy(settings, project, "plan", "--as-of", AS_OF)
        assert done.returncode == 0, done.stderr
        assert installed(project)


def nothing_changed(place: Refusing) -> None:
    with warehouse(place.settings) as wh:
        assert dump(wh) == place.before
        assert wh.scalar("select count(*) from eoy_runner.reset_runs") == 0
        assert wh.scalar("select count(*) from eoy_runner.reset_events") == 0


def execute(settings: Settings, statements: tuple[str, ...]) -> None:
    with warehouse(settings) as wh, wh.transaction():
        for sql in statements:
            wh.execute(sql)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("case", CASES, ids=[c.what.replace(" ", "-") for c in CASES])
def test_each_refusal_is_one_line_and_changes_nothing(
    target: str, case: Case, refusing: Callable[[str], Refusing]
) -> None:
    place = refusing(target)
    text = place.pristine
    for edit in case.edits:
        text = edited(text, edit)
    place.sources.write_text(text)
    execute(place.settings, case.sql)
    try:
        commands = [("plan", "--as-of", AS_OF)] + ([RUN] if case.run_too else [])
        for command in commands:
            done = eoy(place.settings, place.project, *command)
            assert done.returncode != 0, f"{command[0]} went ahead with {case.what}"
            line = one_line(done.stderr)
            for word in case.words:
                assert word in line, f"{command[0]}: {line!r} does not name {word}"
            nothing_changed(place)
    finally:
        place.sources.write_text(place.pristine)
        execute(place.settings, case.undo)


# ---------------------------------------------------------------------------------------
# a run killed at its crash points, finished by running again
# ---------------------------------------------------------------------------------------
# mid-stream (a table's rows taken and deleted, the transaction open), after the files but
# before the commit, and just after the commit (the snapshot not yet in place)
CRASH_POINTS = ["export:*", "commit:delete", "after:commit"]


def outcome(settings: Settings, project: Path, ids: list[int]) -> dict[str, Any]:
    with warehouse(settings) as wh:
        data = dump(wh)
        runs = sorted(
            (str(d), s, int(n or 0))
            for d, s, n in wh.query(
                "select district_id, status, rows_deleted from eoy_runner.reset_runs "
                "where school_year = %s",
                [YEAR],
            )
        )
        deletes = sorted(
            (str(d), int(n))
            for d, n in wh.query(
                "select district_id, count(*) from eoy_runner.reset_events "
                "where step = 'delete' and status = 'completed' group by district_id"
            )
        )
    snapshots = {d: verified(settings, project, d) for d in ids}
    return {"data": data, "runs": runs, "deletes": deletes, "snapshots": snapshots}


class PristineSis(Pristine):
    """Schema sis loaded once per target, copied afresh for each case at the same place (so
    dbt's parse stays warm); the outcome of an uninterrupted run on it."""

    PREFIX = "eoy_sis"

    def __init__(self, target: str, root: Path, project: Path, base_dsn: str | None):
        self.project = project
        super().__init__(target, root, base_dsn)

    def _fill(self, source: Settings) -> None:
        self.data = init_and_load(source, self.project)
        settings = self.copy()
        done = eoy(settings, self.project, *RUN)
        assert done.returncode == 0, done.stderr
        self.reference = outcome(settings, self.project, self.data.districts)


@pytest.fixture(scope="module")
def pristine_sis(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest, project: Path
) -> Iterator[Callable[[str], PristineSis]]:
    made: dict[str, PristineSis] = {}

    def of(target: str) -> PristineSis:
        if target not in made:
            base = request.getfixturevalue("pg_base_dsn") if target == "postgres" else None
            root = tmp_path_factory.mktemp(f"vendor-crash-{target}")
            made[target] = PristineSis(target, root, project, base)
        return made[target]

    yield of
    for each in made.values():
        each.close()


def crash_cases() -> list[Any]:
    return [("duckdb", p) for p in CRASH_POINTS] + [
        pytest.param("postgres", p, marks=pytest.mark.postgres) for p in CRASH_POINTS
    ]


@pytest.mark.slow
@pytest.mark.parametrize(("target", "point"), crash_cases())
def test_a_killed_run_is_finished_by_running_again(
    target: str, point: str, pristine_sis: Callable[[str], PristineSis]
) -> None:
    sis = pristine_sis(target)
    settings = sis.copy()
    killed = start_eoy(settings, sis.project, *RUN, "--json", EOY_FAULT=point)
    _, err = killed.communicate(timeout=600)
    assert killed.returncode == -9, f"the fault point {point} was never reached: {err}"
    again = eoy(settings, sis.project, *RUN)
    assert again.returncode == 0, again.stderr
    got = outcome(settings, sis.project, sis.data.districts)
    assert got["data"] == sis.reference["data"]
    assert got["runs"] == sis.reference["runs"]
    assert got["snapshots"] == sis.reference["snapshots"]
    assert got["deletes"] == [(d, 1) for d, _ in sis.reference["deletes"]], "deleted twice?"


def test_the_generator_is_deterministic(wh: Warehouse, tmp_path: Path) -> None:
    """Same seed, same rows; the schema's facts the tests lean on hold."""
    data = load(wh, 3, seed=5, learners_per_district=4)
    first = dump(wh)
    other = Settings(duckdb_path=tmp_path / "again.duckdb")
    with connect(other, create=True, require_init=False) as again:
        assert load(again, 3, seed=5, learners_per_district=4).rows == data.rows
        assert dump(again) == first
    assert wh.scalar("select count(*) from sis.campuses where org_unit_id is null") == 1
    assert wh.scalar("select max(attempt_id) from sis.attempts") > 2**31
    assert len(shared_learners(data)) == 1  # 101 with 102; 103 has no partner
