"""The source contract of the demo schema and the runner's ledger, as data.

Everything that touches `app` (init, the generator, the export, the delete, the retention
checks) reads table and column names from here, so the contract is written once.
"""

from __future__ import annotations

from dataclasses import dataclass

# Logical column types; each target maps them to its own SQL type.
TEXT, INT, FLOAT, DATE, TIMESTAMP = "text", "int", "float", "date", "timestamp"
# kinds a declared scope's tables may have besides the demo's
BIGINT, BOOL = "bigint", "bool"

SQL_TYPES = {
    "duckdb": {
        TEXT: "varchar",
        INT: "integer",
        FLOAT: "double",
        DATE: "date",
        TIMESTAMP: "timestamp",
        BIGINT: "bigint",
        BOOL: "boolean",
    },
    "postgres": {
        TEXT: "text",
        INT: "integer",
        FLOAT: "double precision",
        DATE: "date",
        TIMESTAMP: "timestamp",
        BIGINT: "bigint",
        BOOL: "boolean",
    },
}


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[tuple[str, str], ...]  # (name, logical type), primary key first
    primary_key: tuple[str, ...]
    deleted: bool  # snapshotted then deleted for a due district
    not_null: tuple[str, ...] = ()
    foreign_keys: tuple[tuple[tuple[str, ...], str, tuple[str, ...]], ...] = ()

    @property
    def column_names(self) -> list[str]:
        return [c for c, _ in self.columns]

    def column_type(self, column: str) -> str:
        return dict(self.columns)[column]


def _t(
    name: str,
    columns: str,
    pk: str,
    deleted: bool,
    not_null: str = "",
    fks: tuple[tuple[str, str, str], ...] = (),
) -> Table:
    cols = tuple((c.split(":")[0], c.split(":")[1] if ":" in c else TEXT) for c in columns.split())
    return Table(
        name=name,
        columns=cols,
        primary_key=tuple(pk.split()),
        deleted=deleted,
        not_null=tuple(not_null.split()),
        foreign_keys=tuple((tuple(a.split()), ref, tuple(b.split())) for a, ref, b in fks),
    )


_D = ("district_id", "districts", "district_id")

APP_TABLES: tuple[Table, ...] = (
    _t("districts", "district_id name state", "district_id", False),
    _t("schools", "school_id district_id name", "school_id", False, "district_id", (_D,)),
    _t(
        "educators",
        "educator_id district_id school_id email first_name last_name role "
        "last_login_at:timestamp created_at:timestamp",
        "educator_id",
        False,
        "district_id",
        (_D, ("school_id", "schools", "school_id")),
    ),
    _t(
        "students",
        "student_id district_id school_id username first_name last_name grade_level "
        "created_at:timestamp",
        "student_id",
        True,
        "district_id",
        (_D, ("school_id", "schools", "school_id")),
    ),
    _t(
        "classrooms",
        "classroom_id district_id school_id educator_id product name created_at:timestamp",
        "classroom_id",
        True,
        "district_id",
        (_D, ("school_id", "schools", "school_id"), ("educator_id", "educators", "educator_id")),
    ),
    _t(
        "classroom_enrollments",
        "classroom_id student_id district_id",
        "classroom_id student_id",
        True,
        "district_id",
        (
            _D,
            ("classroom_id", "classrooms", "classroom_id"),
            ("student_id", "students", "student_id"),
        ),
    ),
    _t(
        "assessments",
        "assessment_id district_id student_id product assessment_type taken_at:timestamp "
        "scaled_score:int",
        "assessment_id",
        True,
        "district_id",
        (_D, ("student_id", "students", "student_id")),
    ),
    _t(
        "progress",
        "progress_id district_id student_id product lesson_id status completed_at:timestamp "
        "score:float",
        "progress_id",
        True,
        "district_id",
        (_D, ("student_id", "students", "student_id")),
    ),
    _t(
        "pathways",
        "pathway_id district_id student_id product pathway_name grade_band assigned_at:timestamp",
        "pathway_id",
        True,
        "district_id",
        (_D, ("student_id", "students", "student_id")),
    ),
    _t(
        "usage_sessions",
        "session_id district_id student_id product started_at:timestamp minutes:int",
        "session_id",
        True,
        "district_id",
        (_D, ("student_id", "students", "student_id")),
    ),
    _t(
        "import_syncs",
        "sync_id district_id provider status paused_at:timestamp resumed_at:timestamp "
        "last_run_at:timestamp",
        "sync_id",
        False,
        "district_id",
        (_D,),
    ),
    _t(
        "district_reset_requests",
        "district_id school_year:int requested_reset_date:date school_year_end_date:date "
        "summer_session_end_date:date rostering_start_date:date",
        "district_id school_year",
        False,
        "",
        (_D,),
    ),
    _t(
        "rostering_runs",
        "district_id school_year:int completed_at:timestamp",
        "district_id school_year",
        False,
        "",
        (_D,),
    ),
)

TABLES = {t.name: t for t in APP_TABLES}

# The seven deleted student-data tables, in the order the export writes them.
DELETED_TABLES: tuple[str, ...] = tuple(t.name for t in APP_TABLES if t.deleted)
# Children first, so no foreign key ever points at a row already gone.
DELETE_ORDER: tuple[str, ...] = (
    "classroom_enrollments",
    "assessments",
    "progress",
    "pathways",
    "usage_sessions",
    "classrooms",
    "students",
)
# The reverse, for putting rows back (restore).
INSERT_ORDER: tuple[str, ...] = tuple(reversed(DELETE_ORDER))
RETAINED_TABLES: tuple[str, ...] = tuple(t.name for t in APP_TABLES if not t.deleted)

# What each deleted table holds, said in the README of a district's copy (a declared
# scope says it in each table's description).
DESCRIPTIONS = {
    "students": "one row per student account",
    "classrooms": "classes and their teacher",
    "classroom_enrollments": "which student is in which class",
    "assessments": "assessment results (scaled score)",
    "progress": "lesson progress and scores",
    "pathways": "learning pathways assigned to students",
    "usage_sessions": "time spent in the programs (minutes)",
}

# Columns that carry student PII: never in the ledger, logs, or audit models.
STUDENT_PII_COLUMNS = {"students": ("username", "first_name", "last_name")}

PRODUCTS = ("imagine_math", "imagine_math_facts")
GRADE_BANDS = ("prek_2", "3_plus")
GRADE_LEVELS = ("PK", "K", *(str(g) for g in range(1, 13)))
PROVIDERS = ("clever", "classlink", "oneroster_sftp")
SYNC_STATUSES = ("active", "paused")
EDUCATOR_ROLES = ("teacher", "administrator")

# ---------------------------------------------------------------------------------------
# Ledger, schema eoy_runner
# ---------------------------------------------------------------------------------------
RUN_STATUSES = ("running", "completed", "failed", "restored")
STEPS = ("pause_syncs", "export", "verify", "delete", "check_retention", "complete")

LEDGER_DDL = {
    "duckdb": [
        """create table if not exists eoy_runner.reset_runs (
            district_id varchar not null,
            school_year integer not null,
            status varchar not null,
            effective_reset_date date,
            started_at timestamp,
            finished_at timestamp,
            snapshot_path varchar,
            manifest_sha256 varchar,
            rows_deleted bigint,
            error varchar,
            primary key (district_id, school_year)
        )""",
        "create sequence if not exists eoy_runner.reset_events_seq",
        """create table if not exists eoy_runner.reset_events (
            event_id bigint primary key default nextval('eoy_runner.reset_events_seq'),
            district_id varchar not null,
            school_year integer,
            step varchar not null,
            status varchar not null,
            "at" timestamp not null default current_timestamp,
            detail json
        )""",
        """create table if not exists eoy_runner.legal_holds (
            district_id varchar primary key,
            held_at timestamp not null default current_timestamp,
            reason varchar
        )""",
        # one row per plan and approver: approving again is a no-op, a second person adds one
        """create table if not exists eoy_runner.plan_approvals (
            plan_sha256 varchar not null,
            approved_by varchar not null,
            approved_at timestamp not null,
            primary key (plan_sha256, approved_by)
        )""",
        # the CSM's request-date: one row per change of a district's request (who, when, old, new)
        "create sequence if not exists eoy_runner.reset_request_changes_seq",
        """create table if not exists eoy_runner.reset_request_changes (
            change_id bigint primary key default nextval('eoy_runner.reset_request_changes_seq'),
            district_id varchar not null,
            school_year integer not null,
            changed_by varchar not null,
            changed_at timestamp not null,
            anyway boolean not null,
            old_requested_reset_date date,
            new_requested_reset_date date,
            old_school_year_end_date date,
            new_school_year_end_date date,
            old_summer_session_end_date date,
            new_summer_session_end_date date,
            old_rostering_start_date date,
            new_rostering_start_date date,
            effective_reset_date date,
            date_source varchar,
            schedule_status varchar,
            issues varchar
        )""",
        # one row per notice sent: a district and reset date is notified once; no address
        """create table if not exists eoy_runner.notices_sent (
            district_id varchar not null,
            school_year integer not null,
            effective_reset_date date not null,
            schedule_status varchar not null,
            date_source varchar,
            recipients integer not null,
            message_id varchar not null,
            sent_at timestamp not null,
            primary key (district_id, school_year, effective_reset_date, schedule_status)
        )""",
        # `plan --out`: each plan document written, for the console's reviewers to approve
        """create table if not exists eoy_runner.plans (
            plan_sha256 varchar primary key,
            made_at timestamp not null,
            made_by varchar not null,
            school_year integer not null,
            as_of date not null,
            document varchar not null
        )""",
        # the web console's actions: who did what, when, to which district (never a secret)
        "create sequence if not exists eoy_runner.console_actions_seq",
        """create table if not exists eoy_runner.console_actions (
            action_id bigint primary key default nextval('eoy_runner.console_actions_seq'),
            "at" timestamp not null,
            username varchar not null,
            role varchar,
            action varchar not null,
            outcome varchar not null,
            district_id varchar,
            school_year integer,
            detail json
        )""",
        # certificates issued (`certificate`, a purge, the post-reset notice): the signed
        # document itself, its sha256 and the key's fingerprint; counts and ids only
        "create sequence if not exists eoy_runner.certificates_seq",
        """create table if not exists eoy_runner.certificates (
            certificate_id bigint primary key default nextval('eoy_runner.certificates_seq'),
            district_id varchar not null,
            school_year integer not null,
            kind varchar not null,
            issued_at timestamp not null,
            document_sha256 varchar not null unique,
            key_fingerprint varchar not null,
            document varchar not null,
            signature varchar not null,
            written_to varchar
        )""",
        # one row per administrator a post-reset notice went to, per reset; no address
        """create table if not exists eoy_runner.certificate_notices_sent (
            district_id varchar not null,
            school_year integer not null,
            educator_id varchar not null,
            reset_started_at timestamp not null,
            document_sha256 varchar not null,
            message_id varchar not null,
            sent_at timestamp not null,
            primary key (district_id, school_year, educator_id, reset_started_at)
        )""",
    ],
    "postgres": [
        """create table if not exists eoy_runner.reset_runs (
            district_id text not null,
            school_year integer not null,
            status text not null check (status in ('running','completed','failed','restored')),
            effective_reset_date date,
            started_at timestamp,
            finished_at timestamp,
            snapshot_path text,
            manifest_sha256 text,
            rows_deleted bigint,
            error text,
            primary key (district_id, school_year)
        )""",
        """create table if not exists eoy_runner.reset_events (
            event_id bigserial primary key,
            district_id text not null,
            school_year integer,
            step text not null,
            status text not null,
            "at" timestamp not null default (now() at time zone 'utc'),
            detail jsonb
        )""",
        """create table if not exists eoy_runner.legal_holds (
            district_id text primary key,
            held_at timestamp not null default (now() at time zone 'utc'),
            reason text
        )""",
        """create table if not exists eoy_runner.plan_approvals (
            plan_sha256 text not null,
            approved_by text not null,
            approved_at timestamp not null,
            primary key (plan_sha256, approved_by)
        )""",
        """create table if not exists eoy_runner.reset_request_changes (
            change_id bigserial primary key,
            district_id text not null,
            school_year integer not null,
            changed_by text not null,
            changed_at timestamp not null,
            anyway boolean not null,
            old_requested_reset_date date,
            new_requested_reset_date date,
            old_school_year_end_date date,
            new_school_year_end_date date,
            old_summer_session_end_date date,
            new_summer_session_end_date date,
            old_rostering_start_date date,
            new_rostering_start_date date,
            effective_reset_date date,
            date_source text,
            schedule_status text,
            issues text
        )""",
        """create table if not exists eoy_runner.notices_sent (
            district_id text not null,
            school_year integer not null,
            effective_reset_date date not null,
            schedule_status text not null check (schedule_status in ('scheduled','blocked')),
            date_source text,
            recipients integer not null,
            message_id text not null,
            sent_at timestamp not null,
            primary key (district_id, school_year, effective_reset_date, schedule_status)
        )""",
        """create table if not exists eoy_runner.plans (
            plan_sha256 text primary key,
            made_at timestamp not null,
            made_by text not null,
            school_year integer not null,
            as_of date not null,
            document text not null
        )""",
        """create table if not exists eoy_runner.console_actions (
            action_id bigserial primary key,
            "at" timestamp not null,
            username text not null,
            role text,
            action text not null,
            outcome text not null,
            district_id text,
            school_year integer,
            detail jsonb
        )""",
        """create table if not exists eoy_runner.certificates (
            certificate_id bigserial primary key,
            district_id text not null,
            school_year integer not null,
            kind text not null check (kind in ('disposition','copy_destroyed')),
            issued_at timestamp not null,
            document_sha256 text not null unique,
            key_fingerprint text not null,
            document text not null,
            signature text not null,
            written_to text
        )""",
        """create table if not exists eoy_runner.certificate_notices_sent (
            district_id text not null,
            school_year integer not null,
            educator_id text not null,
            reset_started_at timestamp not null,
            document_sha256 text not null,
            message_id text not null,
            sent_at timestamp not null,
            primary key (district_id, school_year, educator_id, reset_started_at)
        )""",
    ],
}

# ---------------------------------------------------------------------------------------
# The web console's accounts, schema eoy_console: outside the ledger, which analysts read.
# ---------------------------------------------------------------------------------------
CONSOLE_ROLES = ("csm", "district_admin", "reviewer", "operator")

CONSOLE_DDL = {
    target: [
        "create schema if not exists eoy_console",
        f"""create table if not exists eoy_console.users (
            username {text} primary key,
            role {text} not null check (role in ('csm', 'district_admin', 'reviewer', 'operator')),
            district_id {text},
            password_hash {text} not null,
            created_at timestamp not null,
            created_by {text} not null,
            disabled_at timestamp,
            last_login_at timestamp
        )""",
        # a session row holds a keyed hash of the cookie's token, never the token itself
        f"""create table if not exists eoy_console.sessions (
            session_hash {text} primary key,
            username {text} not null,
            created_at timestamp not null,
            last_seen_at timestamp not null,
            expires_at timestamp not null
        )""",
        f"""create table if not exists eoy_console.login_failures (
            username {text} not null,
            client {text} not null,
            "at" timestamp not null
        )""",
    ]
    for target, text in (("duckdb", "varchar"), ("postgres", "text"))
}
