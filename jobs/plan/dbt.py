"""Run the root dbt project in-process (this repo, or a vendor's project that installs
eoy-reset as a dbt package), on the warehouse the settings name."""

from __future__ import annotations

import csv
import dataclasses
import gc
import hashlib
import importlib
import json
import os
import pickle
import re
import sys
import threading
from collections import OrderedDict
from contextlib import suppress
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from jobs.config import (
    PROJECT_DIR,
    Settings,
    dbt_role_set,
    dsn_parts,
    process_environment,
    project_variables,
    scrub,
)
from jobs.errors import EoyError
from jobs.plan.flags import name_flag_sources_from_frames

POLICY_SEED = PROJECT_DIR / "seeds" / "reset_policy.csv"
# The policy seed and the reset marts with the staging views they read; no audit models, no tests.
# By fqn, which names eoy-reset's models whether its project is the root or a package.
RESET_SELECTION = ["reset_policy", "+fqn:eoy_reset.marts.reset"]
# What `run` reads: who is due, why a named district is not, and the rows of each due district.
RUN_SELECTION = ["reset_policy", "+due_districts", "+reset_scope"]
# In a vendor's project: what a plan reads of the reset marts, without the demo's educators.
VENDOR_SELECTION = [*RUN_SELECTION, "+closed_school_years"]
# The audit views (schema eoy_audit). They read tables of the reset and CSM marts, which dbt
# rebuilds as new tables: on PostgreSQL the old table's drop takes the views with it.
AUDIT_MODELS = "fqn:eoy_reset.marts.audit"
AUDIT_FOLDER = PROJECT_DIR / "models" / "marts" / "audit"
# The role dbt builds as once `init --roles` gave it the schemas (jobs/warehouse/roles.py).
DBT_ROLE = "eoy_dbt"
# The reset's parameters reach the models as environment variables, not --vars: a change of
# --vars makes dbt parse the whole project again (seconds), a changed variable does not (the
# models read them only when dbt executes: macros/reset/reset_parameter.sql).
PARAMETERS = ("EOY_AS_OF_DATE", "EOY_SCHOOL_YEAR", "EOY_NAMED_DISTRICTS")

# What dbt compiles from: every change of these must reach what is kept of a compile. The
# folders are the project's own (its dbt_project.yml's paths; dbt's defaults where it names
# none), and every package it installed besides eoy-reset.
PROJECT_FILES = ("dbt_project.yml", "profiles.yml", "packages.yml")
PROJECT_PATHS = {
    "model-paths": ["models"],
    "macro-paths": ["macros"],
    "seed-paths": ["seeds"],
    "analysis-paths": ["analyses"],
    "test-paths": ["tests"],
    "snapshot-paths": ["snapshots"],
}
# The files of those folders dbt reads (models, schema YAML, docs, seeds).
PROJECT_SUFFIXES = {".sql", ".py", ".yml", ".yaml", ".md", ".csv"}
# An environment variable a project file reads by name: its value is part of a parse.
_ENV_VAR = re.compile(rb"""env_var\(\s*['"]([A-Za-z_][A-Za-z0-9_]*)['"]""")

# The vars the models read through a parameter (macros reset_as_of_date, reset_school_year).
_PARAMETER_OF_VAR = {"as_of_date": "EOY_AS_OF_DATE", "school_year": "EOY_SCHOOL_YEAR"}

# dbt's in-process runner and os.environ are process-wide: one invocation at a time.
_LOCK = threading.Lock()
# The commands that run on a manifest this process parsed already (the same project files,
# vars and profile): dbt's own check that nothing changed reads its whole parse back from disk
# on every invocation. `docs generate` parses for itself: manifest.json is part of its output.
_ON_PARSED = {"build", "compile", "run", "seed", "test"}
# What the commands run: none of them reads manifest.json or run_results.json, which dbt
# would otherwise serialise (the whole manifest) on every invocation. `docs generate` keeps
# them: they are its output.
_NO_JSON_ARTIFACTS = _ON_PARSED - {"test"}
# Parsed manifests of this process (pickled as parsed), newest last, by manifest_key; a few
# (a console serves several warehouses). The same bytes are kept on disk, in the warehouse's
# dbt folder (`manifests/`), for the next process: dbt's own partial parse reads its whole
# parse back and checks every file (a second or more), and cannot read it back at all when a
# source's meta has a key YAML reads as a boolean, as `on:` of SPEC's `of: {table, on}` is
# ("bool is not allowed for map key"): every command in such a project parsed it whole.
_MANIFESTS: OrderedDict[str, bytes] = OrderedDict()
_MANIFESTS_KEPT = 4
# Each project's dbt_project.yml as read: (its mtime and size, what it declares).
_DECLARED: dict[Path, tuple[tuple[int, int], dict[str, Any]]] = {}
# The last digest of the project's files, by the roots and every file's size and mtime.
_DIGESTS: dict[tuple[str, ...], tuple[tuple[Any, ...], str, frozenset[str]]] = {}
# Whether this process has moved what dbt imports out of the garbage collector's way.
_settled = False
# Lines of a dbt error that only say where it happened, not what went wrong.
_WRAPPER = re.compile(
    r"^(compilation|runtime|database|parsing|dependency|dbt runtime|internal) error\b", re.I
)


class DbtError(EoyError):
    """dbt could not build the models; the message is dbt's first real error."""


@dataclass(frozen=True)
class PostgresBuild:
    """What a dbt invocation on PostgreSQL must know of the database first."""

    role: str  # the role dbt builds as: DBT_ROLE once `init --roles` ran here, else ''
    audit_views: int  # audit views there now
    analyst_reads: bool  # eoy_analyst may read eoy_audit here, and cannot build it
    may_build: bool  # the connected role may build the audit views (eoy_analyst may not)


def postgres_build(settings: Settings) -> PostgresBuild:
    """Every role that may build here builds as DBT_ROLE, so each model has one owner
    whichever role built it first (a model of another owner could not be replaced)."""
    from jobs.warehouse.connection import connect

    with connect(settings, require_init=False) as wh:
        role, views, analyst, may = wh.query(
            "select coalesce((select pg_get_userbyid(nspowner) from pg_namespace "
            "where nspname = 'eoy' and pg_get_userbyid(nspowner) = %s "
            "and pg_has_role(current_user, nspowner, 'MEMBER')), ''), "
            "(select count(*) from pg_views where schemaname = 'eoy_audit'), "
            "exists (select 1 from pg_roles r join pg_namespace n on n.nspname = 'eoy_audit' "
            "where r.rolname = 'eoy_analyst' and has_schema_privilege(r.oid, n.oid, 'USAGE')), "
            "coalesce((select has_schema_privilege(current_user, oid, 'CREATE') "
            "from pg_namespace where nspname = 'eoy_audit'), true)",
            [DBT_ROLE],
        )[0]
    return PostgresBuild(str(role), int(views), bool(analyst), bool(may))


def with_audit_views(selection: list[str], build: PostgresBuild | None) -> list[str]:
    """The selection, and on PostgreSQL the audit views when someone reads them there (they
    exist, or eoy_analyst, who cannot build them, was given them): a build of the marts they
    read would otherwise drop them. All of them, and what they read, when one is missing."""
    if build is None or any("marts.audit" in s or "marts/audit" in s for s in selection):
        return selection
    if not (build.audit_views or build.analyst_reads):
        return selection
    every = build.audit_views >= len(list(AUDIT_FOLDER.glob("*.sql")))
    return [*selection, AUDIT_MODELS if every else f"+{AUDIT_MODELS}"]


class PolicyError(EoyError):
    """The seed reset_policy has no row for the school year asked for."""


def dbt_work_dir(settings: Settings) -> Path:
    """Where dbt keeps target/ and logs/ for this warehouse (and root project), so warehouses
    and projects never share them. On PostgreSQL each user has its own: dbt parses the whole
    project again when the profile's user differs from its last parse's, and the runner, the
    CSM and the analyst take turns on one warehouse."""
    base = Path(settings.duckdb_path).resolve().parent / "dbt"
    if settings.is_vendor_project:
        tag = hashlib.sha256(str(Path(settings.project_dir).resolve()).encode()).hexdigest()[:8]
        base = base / f"project-{tag}"
    if settings.target == "duckdb":
        return base / Path(settings.duckdb_path).stem
    parts = dsn_parts(settings.pg_dsn or "")
    where = [
        parts.get("host") or "localhost",
        parts.get("port") or "5432",
        parts.get("dbname") or parts.get("user") or "",
        parts.get("user") or "",
    ]
    key = "pg-" + "-".join(where)
    return base / re.sub(r"[^A-Za-z0-9_.-]+", "_", key)


def run_dbt(
    settings: Settings,
    args: list[str],
    vars: dict[str, Any] | None = None,
    parameters: dict[str, str] | None = None,
    build: PostgresBuild | None = None,
) -> Any:
    """Run one dbt command (e.g. ["build", "--select", "x"]); raise DbtError on failure.
    Returns dbt's result (its `.result.results` hold each node, with its compiled SQL).

    `parameters`: the reset's parameters (PARAMETERS) for the models; unset ones are cleared
    so that nothing of an earlier invocation in this process leaks into this one. `build`:
    postgres_build of the warehouse, when the caller has it already."""
    if settings.target == "postgres" and build is None:
        build = postgres_build(settings)
    _settle(settings.target)
    work = dbt_work_dir(settings)
    if args[0] != "deps":
        ensure_package(settings)
    project = str(Path(settings.project_dir).resolve())
    command = [
        *args,
        "--project-dir",
        project,
        "--profiles-dir",
        project,
        "--target",
        settings.target,
        "--target-path",
        str(work / "target"),
        "--log-path",
        str(work / "logs"),
        "--log-level",
        "none",
        "--log-level-file",
        "info",
        "--no-use-colors",
        "--no-send-anonymous-usage-stats",
        "--no-version-check",
    ]
    if args[0] == "deps":  # deps takes no target, nor target and log paths
        command = [*args, "--project-dir", project, "--profiles-dir", project]
        command += ["--log-level", "none", "--no-use-colors", "--no-send-anonymous-usage-stats"]
    if args[0] in _NO_JSON_ARTIFACTS:
        command.append("--no-write-json")
    if vars:
        command += ["--vars", json.dumps(vars, default=str)]
    env = {
        **settings.dbt_env(),
        "EOY_TARGET": settings.target,
        **{name: (parameters or {}).get(name, "") for name in PARAMETERS},
    }
    if build is not None and not dbt_role_set():  # as the operator sets it
        env["EOY_DBT_ROLE"] = build.role
    with _LOCK, process_environment(env):
        try:
            result = _invoke(command, manifest_key(settings, vars, env), work / "manifests")
        except Exception as exc:  # dbt raises for bad projects or profiles
            said = scrub(_first_error(str(exc)), settings.pg_dsn)
            raise DbtError(f"dbt {args[0]} failed: {said}") from None
    if result.success:
        return result
    said = scrub(_result_error(result, work / "logs"), settings.pg_dsn)
    if "permission denied" in said:
        said += (
            ": this role may not build the models (with the roles of `init --roles`, "
            "eoy_runner and eoy_csm build them), or the warehouse changed since `eoy-reset "
            "init --roles` (run it again as the warehouse's owner)"
        )
    raise DbtError(f"dbt {args[0]} failed: {said}")


def manifest_key(settings: Settings, vars: dict[str, Any] | None, env: dict[str, str]) -> str:
    """What a parse of the project depends on: its files and vars (project_key), the
    variables this command sets for dbt (the profile's) and the value of every environment
    variable a project file reads by name, but not the reset's parameters, which the models
    read only when dbt executes."""
    _, names = _project_files(settings)
    profile = {k: v for k, v in sorted(env.items()) if k not in PARAMETERS}
    read = project_variables(n for n in names if n not in PARAMETERS)
    python = list(sys.version_info[:2])  # a kept parse is pickled
    return project_key(settings, "manifest", vars or {}, profile, read, python)


def _invoke(command: list[str], key: str, folder: Path) -> Any:
    """dbt's runner for one command: on a fresh copy of the manifest parsed under key (by
    this process, or by an earlier one and kept in folder) when there is one, else on a parse
    made now and kept (a command that needs a manifest), else (docs, deps) as dbt runs it. A
    copy, because running a command changes its manifest (compiled SQL, ephemeral models
    marked as injected). The caller holds _LOCK."""
    from dbt.cli.main import dbtRunner

    name = command[0]
    if name == "parse":
        result = dbtRunner().invoke(command)
        if result.success:
            _keep(key, _frozen(result.result), folder)
        return result
    if name not in _ON_PARSED:
        return dbtRunner().invoke(command)
    kept = _MANIFESTS.get(key) or _read_kept(folder, key)
    manifest = None
    if kept is not None:
        try:
            manifest = _thawed(kept)
        except Exception:  # kept by another version of dbt or of this package: parse again
            kept = None
    if kept is None:
        flags = [f for f in command[command.index("--project-dir") :] if f != "--no-write-json"]
        parsed = dbtRunner().invoke(["parse", *flags, "--no-write-json"])
        if not parsed.success:
            return parsed
        kept = _frozen(parsed.result)
        manifest = _thawed(kept)
        _write_kept(folder, key, kept)
    _keep(key, kept)
    return dbtRunner(manifest=manifest).invoke(command)


def _keep(key: str, kept: bytes, folder: Path | None = None) -> None:
    """A parsed manifest kept in this process (the few newest), and in folder when given."""
    if folder is not None:
        _write_kept(folder, key, kept)
    _MANIFESTS[key] = kept
    _MANIFESTS.move_to_end(key)
    while len(_MANIFESTS) > _MANIFESTS_KEPT:
        _MANIFESTS.popitem(last=False)


def _read_kept(folder: Path, key: str) -> bytes | None:
    """The manifest an earlier process parsed under key, if it kept one in folder: only a
    file of this user that no one else may read or write (it is unpickled)."""
    try:
        with open(folder / f"{key}.pickle", "rb") as fh:
            found = os.fstat(fh.fileno())
            if found.st_uid != os.getuid() or found.st_mode & 0o077:
                return None
            return fh.read()
    except OSError:
        return None


def _write_kept(folder: Path, key: str, frozen: bytes) -> None:
    """Keep a parsed manifest in folder for the next process (whole or not at all: written
    aside, then renamed), with the few most recent others. Only this user may read it: it is
    unpickled as this process's own."""
    with suppress(OSError):  # a folder that will not take it: the next process parses
        folder.mkdir(parents=True, exist_ok=True)
        aside = folder / f".{key}.{os.getpid()}.{threading.get_ident()}"
        fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, frozen)
        finally:
            os.close(fd)
        os.replace(aside, folder / f"{key}.pickle")
        older = sorted(folder.glob("*.pickle"), key=lambda p: p.stat().st_mtime, reverse=True)
        for path in older[_MANIFESTS_KEPT:]:
            path.unlink(missing_ok=True)


def _frozen(manifest: Any) -> bytes:
    """A parsed manifest as bytes: its fields, without the lookups dbt builds from them on
    first use (dbt's own pickling of a Manifest misplaces those in 1.11)."""
    fields = {f.name: getattr(manifest, f.name) for f in dataclasses.fields(manifest)}
    return pickle.dumps({k: v for k, v in fields.items() if not k.startswith("_")})


def _thawed(frozen: bytes | None) -> Any:
    """A new Manifest from _frozen's bytes (None: none kept, dbt parses)."""
    if frozen is None:
        return None
    from dbt.contracts.graph.manifest import Manifest

    return Manifest(**pickle.loads(frozen))  # bytes this process made (_frozen)


def ensure_package(settings: Settings) -> None:
    """In a vendor's project, `dbt deps` once its dbt_packages/ lacks eoy-reset."""
    if not settings.is_vendor_project:
        return
    project = Path(settings.project_dir)
    if (project / "dbt_packages" / "eoy_reset").exists():
        return
    run_dbt(settings, ["deps"])


def project_key(settings: Settings, *inputs: Any) -> str:
    """A digest of what dbt compiles from for this warehouse: dbt's version, the target, the
    warehouse's dbt folder (one per warehouse), every file of the project and of the packages
    it installed, and `inputs` (the vars and parameters of an invocation), so SQL dbt compiled
    can be kept under it."""
    from dbt.version import __version__ as dbt_version

    digest = hashlib.sha256()
    digest.update(f"{dbt_version}\0{settings.target}\0{dbt_work_dir(settings)}\0".encode())
    digest.update(json.dumps(inputs, sort_keys=True, default=str).encode())
    digest.update(_project_files(settings)[0].encode())
    return digest.hexdigest()


def _project_roots(settings: Settings) -> list[Path]:
    """eoy-reset's project, and a vendor's with each package it installed but eoy-reset."""
    roots = [PROJECT_DIR.resolve()]
    if settings.is_vendor_project:
        vendor = Path(settings.project_dir).resolve()
        roots.append(vendor)
        installed = vendor / str(_declared(vendor).get("packages-install-path", "dbt_packages"))
        if installed.is_dir():
            roots += sorted({p.resolve() for p in installed.iterdir() if p.is_dir()} - {roots[0]})
    return roots


def _declared(root: Path) -> dict[str, Any]:
    """A project's dbt_project.yml as YAML reads it ({} where it does not); read again only
    when its size or mtime changed (the caller reads, never changes, what it gets)."""
    import yaml  # type: ignore[import-untyped]

    path = root / "dbt_project.yml"
    try:
        st = path.stat()
        stamp = (st.st_mtime_ns, st.st_size)
        known = _DECLARED.get(path)
        if known is not None and known[0] == stamp:
            return known[1]
        found = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return {}
    declared = found if isinstance(found, dict) else {}
    _DECLARED[path] = (stamp, declared)
    return declared


def _files(root: Path) -> list[Path]:
    """A project's files that dbt parses: its project files and its paths' files."""
    declared = _declared(root)
    folders = set()
    for key, default in PROJECT_PATHS.items():
        named = declared.get(key, default)
        folders |= {str(f) for f in (named if isinstance(named, list) else default)}
    paths = [root / name for name in PROJECT_FILES if (root / name).is_file()]
    for folder in sorted(folders):
        found = (root / folder).rglob("*")
        paths += sorted(p for p in found if p.suffix in PROJECT_SUFFIXES and p.is_file())
    return paths


def _project_files(settings: Settings) -> tuple[str, frozenset[str]]:
    """The digest of every file a parse of the project reads, and the environment
    variables they read by name. Read again only when a file's size or mtime changed, or a
    file came or went."""
    roots = _project_roots(settings)
    files = [(root, path) for root in roots for path in _files(root)]
    found = ((path, path.stat()) for _, path in files)
    stats = tuple((str(path), st.st_mtime_ns, st.st_size) for path, st in found)
    key = tuple(str(root) for root in roots)
    known = _DIGESTS.get(key)
    if known is not None and known[0] == stats:
        return known[1], known[2]
    digest, names = hashlib.sha256(), set()
    for root, path in files:
        data = path.read_bytes()
        digest.update(f"\0{root}\0{path.relative_to(root)}\0".encode())
        digest.update(hashlib.sha256(data).digest())
        names |= {m.decode() for m in _ENV_VAR.findall(data)}
    _DIGESTS[key] = (stats, digest.hexdigest(), frozenset(names))
    return digest.hexdigest(), frozenset(names)


def _settle(target: str) -> None:
    """Once per process, before dbt's first invocation: import the target's adapter and
    freeze what is alive (`gc.freeze`). dbt allocates millions of short-lived objects per
    invocation, and every full collection would walk the hundreds of thousands that its
    modules (and polars, pyarrow, DuckDB) keep for the life of the process; frozen, they are
    skipped. A `plan` took 3.9-4.0 s without it, 3.4-3.5 s with it."""
    global _settled
    if _settled:
        return
    importlib.import_module(f"dbt.adapters.{target}")
    name_flag_sources_from_frames()
    gc.freeze()
    _settled = True


def build_models(
    settings: Settings,
    selection: list[str],
    vars: dict[str, Any] | None = None,
    parameters: dict[str, str] | None = None,
) -> Any:
    """`dbt build` of the selected models only: their data tests are the analytics engineer's
    `dbt build`, not a command's. On PostgreSQL, with the audit views when they must be kept
    (with_audit_views)."""
    build = postgres_build(settings) if settings.target == "postgres" else None
    args = ["build", "--select", *with_audit_views(selection, build)]
    args += ["--exclude-resource-type", "test", "--exclude-resource-type", "unit_test"]
    return run_dbt(settings, args, vars=vars, parameters=parameters, build=build)


def as_parameters(variables: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """dbt vars split into the reset's parameters (the day and the school year, which the
    models read from a var or else from its parameter) and the vars left. The same values reach
    the models either way; passed as parameters, a new day does not make dbt parse again."""
    parameters, rest = {}, {}
    for name, value in variables.items():
        if name in _PARAMETER_OF_VAR and value is not None:
            parameters[_PARAMETER_OF_VAR[name]] = str(value)
        else:
            rest[name] = value
    return parameters, rest


def _first_error(text: str) -> str:
    """The first line of a dbt message that says what is wrong."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    for line in lines:
        if not _WRAPPER.match(line):
            return line
    return lines[0] if lines else "unknown error"


def _result_error(result: Any, log_dir: Path) -> str:
    if result.exception is not None:
        return _first_error(str(result.exception))
    for node_result in getattr(result.result, "results", None) or []:
        status = str(getattr(node_result, "status", "")).lower()
        if status in ("error", "fail", "runtime error"):
            node = getattr(node_result, "node", None)
            where = f" (in {node.resource_type} {node.name})" if node is not None else ""
            return _first_error(str(node_result.message or status)) + where
    return f"see {log_dir / 'dbt.log'}"


def policy_rows() -> list[tuple[int, str, str]]:
    """The seed reset_policy.csv: (school_year, default_reset_date, earliest_reset_date)
    of each row, in order of school year."""
    with POLICY_SEED.open(newline="") as fh:
        return sorted(
            (int(row["school_year"]), row["default_reset_date"], row["earliest_reset_date"])
            for row in csv.DictReader(fh)
            if row.get("school_year")
        )


def policy_years() -> set[int]:
    """School years the seed reset_policy.csv has a row for."""
    return {year for year, _, _ in policy_rows()}


def build_reset_models(
    settings: Settings,
    as_of: date,
    school_year: int | None,
    named_districts: list[str] | None = None,
    for_run: bool = False,
    models: tuple[str, ...] = (),
) -> int:
    """Seed the policy and build the reset marts for a day; returns the school year used.

    named_districts: districts the operator named; a restored one among them is due again.
    for_run: only what `run` reads (RUN_SELECTION), not the plan's inactive educators.
    models: the root project's models the scope's `rows:` declarations name, built with them.
    """
    from jobs.warehouse.connection import connect

    year = school_year if school_year is not None else as_of.year
    if year not in policy_years():
        raise PolicyError(
            f"no reset policy for school year {year}: add a row to seeds/reset_policy.csv"
        )
    from jobs.output import phase

    # a clear "run eoy-reset init" beats dbt's missing-table error (and dbt creating a file)
    connect(settings).close()
    with phase(f"building the reset models as of {as_of.isoformat()}…"):
        _build_reset(settings, as_of, year, named_districts, for_run, models)
    return year


def _build_reset(
    settings: Settings,
    as_of: date,
    year: int,
    named_districts: list[str] | None,
    for_run: bool,
    models: tuple[str, ...] = (),
) -> None:
    selection = RUN_SELECTION if for_run else RESET_SELECTION
    if settings.is_vendor_project and not for_run:
        selection = VENDOR_SELECTION
    build_models(
        settings,
        [*selection, *models],
        parameters={
            "EOY_AS_OF_DATE": as_of.isoformat(),
            "EOY_SCHOOL_YEAR": str(year),
            "EOY_NAMED_DISTRICTS": json.dumps(list(named_districts or [])),
        },
    )


def release_duckdb() -> None:
    """dbt-duckdb keeps the database of its last build open in this process until the next
    build: close it, so that another process (a command beside the console) can have it."""
    connections = sys.modules.get("dbt.adapters.duckdb.connections")
    if connections is None:
        return
    manager = connections.DuckDBConnectionManager
    if manager._ENV is not None:
        with suppress(Exception):
            manager._ENV.close()
        manager.close_all_connections()
