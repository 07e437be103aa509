"""One name, one meaning: each setting of the environment is read in jobs/config.py only, and
a module-level constant is defined once (a name two modules define must be listed here with
what each means).
"""

from __future__ import annotations

import ast
import os
import re
from collections import defaultdict
from pathlib import Path

import pytest

from jobs import config
from jobs.warehouse.contract import APP_TABLES, DELETED_TABLES

ROOT = Path(__file__).resolve().parents[2]
JOBS = ROOT / "jobs"

# Names two modules define for two different things, each with why it may stay so.
SAME_NAME_ELSEWHERE = {
    "ARROW_TYPES": "contract types → Arrow types for generated rows, and for fingerprints",
    "CSS": "the report's stylesheet, and the certificate's",
    "EDUCATOR_ROLES": "the contract's educator roles, and the roles a OneRoster file names",
    "FACTS": "a certificate's facts by kind, and the OneRoster check's Math Facts pattern",
    "FILE_MODE": "a snapshot file's mode (0600), and a certificate file's (0644)",
    "FORMAT": "the snapshot manifest's format, and the certificate's",
    "SEED": "the demo's data seed, and the fingerprint's hash seed",
    "SOURCES": "the words for a date's source, in the CSM's view and in the plan's",
}


def python_files() -> list[Path]:
    return sorted(JOBS.rglob("*.py"))


def environment_reads(path: Path) -> list[str]:
    """`os.environ` and `os.getenv` (or `environ`, `getenv` imported) in a file, by line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        name = None
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb"):
            name = node.attr
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            name = next((a.name for a in node.names if a.name in ("environ", "getenv")), None)
        if name:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    return found


def test_settings_are_read_from_the_environment_in_config_only() -> None:
    reads = [r for p in python_files() if p != JOBS / "config.py" for r in environment_reads(p)]
    assert not reads, "read the setting through a function of jobs/config.py:\n" + "\n".join(reads)


def test_the_check_finds_an_environment_read(tmp_path: Path) -> None:
    sample = ROOT / "jobs" / "config.py"
    assert environment_reads(sample), "config.py reads the environment: the check must see it"
    quiet = tmp_path / "quiet.py"
    quiet.write_text("import sys\nprint(sys.argv)\n")
    assert environment_reads(quiet) == []


def module_constants() -> dict[str, list[str]]:
    defined: dict[str, list[str]] = defaultdict(list)
    for path in python_files():
        for node in ast.parse(path.read_text(), str(path)).body:
            targets = node.targets if isinstance(node, ast.Assign) else []
            if isinstance(node, ast.AnnAssign):
                targets = [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and target.id.isupper():
                    defined[target.id].append(str(path.relative_to(ROOT)))
    return defined


def test_a_constant_is_defined_once() -> None:
    twice = {
        name: where
        for name, where in module_constants().items()
        if len(where) > 1 and name not in SAME_NAME_ELSEWHERE
    }
    assert not twice, f"one name, one definition (or list it with its meanings): {twice}"
    stale = [n for n in SAME_NAME_ELSEWHERE if len(module_constants().get(n, [])) < 2]
    assert not stale, f"listed but defined once now: drop {stale} from SAME_NAME_ELSEWHERE"


@pytest.mark.parametrize(
    ("variable", "value", "read"),
    [
        ("EOY_OPERATOR", "  Ada  ", lambda: config.operator_setting() == "Ada"),
        ("EOY_REQUIRE_SECOND_PERSON", " ON ", lambda: config.second_person_setting() == "on"),
        ("EOY_PLAN_TOLERANCE", "0.5", config.plan_tolerance_set),
        ("EOY_SMTP_PASSWORD", "pw", lambda: config.smtp_password() == "pw"),
        ("EOY_NOTICE_FROM", " a@b.example ", lambda: config.notice_sender() == "a@b.example"),
        ("EOY_DEBUG", "1", config.debug),
        ("EOY_NO_SPINNER", "1", config.spinner_off),
        ("EOY_DBT_ROLE", "eoy_dbt", config.dbt_role_set),
        ("AWS_REGION", "eu-west", lambda: ("AWS_REGION", "eu-west") in config.aws_environment()),
    ],
)
def test_each_setting_is_read_when_it_is_needed(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, read: object
) -> None:
    assert callable(read)
    monkeypatch.delenv(variable, raising=False)
    assert not read()
    monkeypatch.setenv(variable, value)
    assert read()


def test_process_environment_puts_back_what_was_there(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EOY_TARGET", "duckdb")
    monkeypatch.delenv("EOY_SCHOOL_YEAR", raising=False)
    with config.process_environment({"EOY_TARGET": "postgres", "EOY_SCHOOL_YEAR": "2024"}):
        assert os.environ["EOY_TARGET"] == "postgres"
    assert os.environ["EOY_TARGET"] == "duckdb"
    assert "EOY_SCHOOL_YEAR" not in os.environ


# ---------------------------------------------------------------------------------------
# The reset knows the warehouse only through the scope the project declares: no module of
# jobs/ and no macro names a table of the demo schema `app`, except what builds or fills
# that schema (the synthetic generator, init's demo DDL and the OneRoster loader). Syncs,
# requests and rostering are reached through their declared roles, the student tables
# through the declaration, and the demo's educators through the dbt view educator_contacts.
# ---------------------------------------------------------------------------------------
# What builds or fills the demo schema, and may name its tables.
ALLOWED = (
    "jobs/synthetic/",
    "jobs/roster/",
    "jobs/warehouse/contract.py",
    "jobs/warehouse/schema.py",
)
DEMO_TABLES = tuple(t.name for t in APP_TABLES)
# A table qualified by the demo's schema, a dbt source of it, or the staging of a demo-only
# table (the role tables' staging reads the declared role, and stays).
ROLE_STAGING = ("districts", "import_syncs", "district_reset_requests", "rostering_runs")
PATTERNS = (
    re.compile(rf"\bapp\.\"?({'|'.join(DEMO_TABLES)})\b"),
    re.compile(r"\bsource\(\s*['\"]app['\"]"),
    re.compile(rf"\bstg_app__({'|'.join(t for t in DEMO_TABLES if t not in ROLE_STAGING)})\b"),
)
JINJA_COMMENT = re.compile(r"\{#.*?#\}", re.S)


def _places(root: Path) -> list[Path]:
    files = [*sorted((root / "jobs").rglob("*")), *sorted((root / "macros").rglob("*.sql"))]
    return [
        p
        for p in files
        if p.is_file()
        and p.suffix in (".py", ".sql", ".html")
        and not p.relative_to(root).as_posix().startswith(ALLOWED)
    ]


def demo_names(root: Path) -> list[str]:
    """Each place a file outside ALLOWED names a demo table: path:line: what."""
    found = []
    for path in _places(root):
        text = path.read_text(encoding="utf-8")
        where = path.relative_to(root).as_posix()
        if path.suffix == ".sql":
            text = JINJA_COMMENT.sub(lambda m: "\n" * m.group(0).count("\n"), text)
        for number, line in enumerate(text.splitlines(), 1):
            for pattern in PATTERNS:
                for hit in pattern.finditer(line):
                    found.append(f"{where}:{number}: {hit.group(0)}")
        if path.suffix == ".py":
            # a student table's name as a string of the code (not in a docstring's prose)
            for node in ast.walk(ast.parse(text, where)):
                if isinstance(node, ast.Constant) and node.value in DELETED_TABLES:
                    found.append(f"{where}:{node.lineno}: {node.value!r}")
    return found


def test_no_module_or_macro_names_a_demo_table() -> None:
    assert demo_names(ROOT) == []


def test_the_check_finds_a_demo_table_named(tmp_path: Path) -> None:
    (tmp_path / "jobs" / "csm").mkdir(parents=True)
    (tmp_path / "jobs" / "synthetic").mkdir(parents=True)
    (tmp_path / "macros").mkdir()
    (tmp_path / "jobs" / "csm" / "x.py").write_text(
        'SQL = "select email from app.educators"\nTABLES = ("students",)\n'
        '"""students, in prose, are no table."""\n',
        encoding="utf-8",
    )
    (tmp_path / "jobs" / "synthetic" / "rows.py").write_text(
        'SQL = "insert into app.students"\n', encoding="utf-8"
    )
    (tmp_path / "macros" / "m.sql").write_text(
        "{# source('app', 'students') in a comment #}\n"
        "select * from {{ ref('stg_app__progress') }}\n"
        "select * from {{ ref('stg_app__districts') }}\n"
        "select * from {{ source('app', 'pathways') }}\n",
        encoding="utf-8",
    )
    assert demo_names(tmp_path) == [
        "jobs/csm/x.py:1: app.educators",
        "jobs/csm/x.py:2: 'students'",
        "macros/m.sql:2: stg_app__progress",
        "macros/m.sql:4: source('app'",
    ]
