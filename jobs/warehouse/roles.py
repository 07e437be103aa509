"""`eoy-reset init --roles`: least-privilege PostgreSQL roles, so a bug in our code cannot
delete what the reset must keep (issue: reliability and security).

The tables are the reset's declared scope (`Grants`, made from it by jobs/scope/grants.py;
the demo's when none is given): its schemas and every table declared there, the tables it
deletes, and where its syncs and requests are kept.

- eoy_dbt      builds the models: reads the scope's tables and eoy_runner, owns schemas eoy
               and eoy_audit.
- eoy_runner   runs the reset: reads the scope's tables; DELETE (and INSERT, for restore)
               only on the tables declared deleted; UPDATE only of the sync status columns
               of the declared syncs table; owns eoy_runner.
               It builds the models before a run, so it is also a member of eoy_dbt.
- eoy_analyst  reads the audit views of eoy_audit and nothing of the scope's tables.
- eoy_csm      the CSM's request-date and notices: INSERT and UPDATE only of the requests
               table; appends to the request history and the notices
               ledger; builds the models they read (a member of eoy_dbt), deletes nothing;
               reads the ledger's events and approvals and records the certificates its
               post-reset notices carry.

Roles are created with LOGIN and no password: set one (`alter role … password …`) or map
them in pg_hba.conf as your site requires. Running init --roles again is safe, and `init`
runs it again by itself on a database that has the roles (a ledger table an upgrade added
goes to eoy_runner). Whoever runs dbt here builds as eoy_dbt (jobs/plan/dbt.py), so every
model has one owner, whichever role built it first.
"""

from __future__ import annotations

from dataclasses import dataclass

from jobs.errors import EoyError
from jobs.warehouse.connection import Warehouse
from jobs.warehouse.contract import APP_TABLES, DELETED_TABLES
from jobs.warehouse.schema import ROLE_TABLES

ROLES = ("eoy_dbt", "eoy_runner", "eoy_analyst", "eoy_csm")
SYNC_STATUS_COLUMNS = ("status", "paused_at", "resumed_at")


class RolesError(EoyError):
    pass


@dataclass(frozen=True)
class Grants:
    """What the roles are granted on, from the reset's scope: relations as SQL (schema.table,
    quoted as needed)."""

    schemas: tuple[str, ...]  # the in-scope schemas
    tables: tuple[str, ...]  # every declared table: read
    deleted: tuple[str, ...]  # the tables declared deleted: delete, insert (restore)
    syncs: str | None  # the declared syncs table (None: eoy-reset's own, the runner's)
    requests: str  # where the requests are kept: the CSM records them


def demo_grants() -> Grants:
    """The demo's: every table `init` creates in schema app."""
    syncs, requests, _ = (f"app.{t}" for t in ROLE_TABLES)
    return Grants(
        schemas=("app",),
        tables=tuple(f"app.{t.name}" for t in APP_TABLES),
        deleted=tuple(f"app.{t}" for t in DELETED_TABLES),
        syncs=syncs,
        requests=requests,
    )


def role_statements(grants: Grants | None = None) -> list[str]:
    grants = grants or demo_grants()
    schemas = grants.schemas
    read = ", ".join(grants.tables)
    deleted = ", ".join(grants.deleted)
    requests = grants.requests
    sql = [
        # roles are cluster-wide: create each only once
        *(
            f"do $$ begin if not exists (select 1 from pg_roles where rolname = '{r}') "
            f"then create role {r} login; end if; end $$"
            for r in ROLES
        ),
        *(f"revoke all on schema {s} from public" for s in schemas),
        *(f"revoke all on all tables in schema {s} from public" for s in schemas),
        # dbt: read the sources, own the schemas it builds into
        *(f"grant usage on schema {s} to eoy_dbt" for s in schemas),
        f"grant select on {read} to eoy_dbt",
        "grant usage on schema eoy_runner to eoy_dbt",
        "grant select on all tables in schema eoy_runner to eoy_dbt",
        "create schema if not exists eoy authorization eoy_dbt",
        "create schema if not exists eoy_audit authorization eoy_dbt",
        "alter schema eoy owner to eoy_dbt",
        "alter schema eoy_audit owner to eoy_dbt",
        # runner: read the scope, delete/insert student rows, flip sync status, own the ledger
        "grant eoy_dbt to eoy_runner",
        *(f"grant usage on schema {s} to eoy_runner" for s in schemas),
        f"grant select on {read} to eoy_runner",
        *([f"grant delete, insert on {deleted} to eoy_runner"] if deleted else []),
        *(
            [f"grant update ({', '.join(SYNC_STATUS_COLUMNS)}) on {grants.syncs} to eoy_runner"]
            if grants.syncs is not None
            else []  # eoy-reset's own, in eoy_runner, which the runner owns
        ),
        "alter schema eoy_runner owner to eoy_runner",
        "grant usage on schema eoy_runner to eoy_runner",
        # every ledger table and sequence, whatever `init` has added since
        _owned_by("eoy_runner", "eoy_runner"),
        # what dbt built before the roles (a build as another role) goes to the dbt role, or
        # its next build could not replace it
        _owned_by("eoy", "eoy_dbt"),
        _owned_by("eoy_audit", "eoy_dbt"),
        # analyst: the audit views only (views run with their owner's rights, not the reader's)
        "grant usage on schema eoy_audit to eoy_analyst",
        "grant select on all tables in schema eoy_audit to eoy_analyst",
        "alter default privileges for role eoy_dbt in schema eoy_audit "
        "grant select on tables to eoy_analyst",
        "alter default privileges for role eoy_dbt in schema eoy "
        "grant select on tables to eoy_runner",
        # csm: record requests, append to its two ledger tables, build what it reads
        "grant eoy_dbt to eoy_csm",
        *(f"grant usage on schema {s} to eoy_csm" for s in schemas),
        f"grant select on {read} to eoy_csm",
        f"grant insert, update on {requests} to eoy_csm",
        "grant usage on schema eoy_runner to eoy_csm",
        "grant select on eoy_runner.reset_runs to eoy_csm",
        "grant select, insert on eoy_runner.reset_request_changes, eoy_runner.notices_sent "
        "to eoy_csm",
        "grant usage on sequence eoy_runner.reset_request_changes_change_id_seq to eoy_csm",
        # certificates: the runner (and a purge) issues them, the CSM's post-reset notice
        # issues and sends them, so both read the facts a certificate states
        "alter table eoy_runner.certificates owner to eoy_runner",
        "alter table eoy_runner.certificate_notices_sent owner to eoy_runner",
        "alter sequence eoy_runner.certificates_certificate_id_seq owner to eoy_runner",
        "grant select on eoy_runner.reset_events, eoy_runner.plan_approvals to eoy_csm",
        "grant select, insert, update (written_to) on eoy_runner.certificates to eoy_csm",
        "grant select, insert on eoy_runner.certificate_notices_sent to eoy_csm",
        "grant usage on sequence eoy_runner.certificates_certificate_id_seq to eoy_csm",
    ]
    return sql


def _owned_by(schema: str, role: str) -> str:
    """A statement that hands every table, view and sequence of the schema to the role."""
    return (
        "do $$ declare o record; begin for o in "
        "select c.relname, case c.relkind when 'v' then 'view' when 'm' then 'materialized view' "
        "when 'S' then 'sequence' else 'table' end as kind from pg_class c "
        "join pg_namespace n on n.oid = c.relnamespace "
        f"where n.nspname = '{schema}' and c.relkind in ('r', 'p', 'v', 'm', 'S') "
        f"and pg_get_userbyid(c.relowner) <> '{role}' "
        # sequences last: one that serves a table follows the table, alone it would refuse
        "order by c.relkind = 'S' loop "
        f"execute format('alter %s %I.%I owner to {role}', o.kind, '{schema}', o.relname); "
        "end loop; end $$"
    )


def roles_set_up(wh: Warehouse) -> bool:
    """Whether `init --roles` ran on this database (roles are the server's, grants are each
    database's): its ledger schema belongs to eoy_runner."""
    if wh.target != "postgres":
        return False
    return bool(
        wh.scalar(
            "select count(*) from pg_namespace where nspname = 'eoy_runner' "
            "and pg_get_userbyid(nspowner) = 'eoy_runner'"
        )
    )


def create_roles(wh: Warehouse, grants: Grants | None = None) -> list[str]:
    """The roles, granted on the scope's tables (`grants`; the demo's when None)."""
    if wh.target != "postgres":
        raise RolesError("--roles needs --target postgres: DuckDB has no roles")
    with wh.transaction():
        for sql in role_statements(grants):
            wh.execute(sql)
    return list(ROLES)
