"""Reading a OneRoster 1.1 CSV bulk export (the files, their columns, the manifest), with
line numbers for every problem; no warehouse."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow as pa

from jobs.errors import EoyError


class RosterError(EoyError):
    """The export or the warehouse state does not allow the import; nothing was written."""


@dataclass(frozen=True)
class CsvSpec:
    file: str
    required: tuple[str, ...]  # columns the import reads: must be in the header
    optional: tuple[str, ...]  # read when present, null when absent
    not_empty: tuple[str, ...]  # values every row must carry
    private: bool = False  # users.csv: errors name line and column, never a value


SPECS = {
    "orgs": CsvSpec(
        "orgs",
        ("sourcedId", "name", "type"),
        ("status", "parentSourcedId"),
        ("sourcedId", "type"),
    ),
    "users": CsvSpec(
        "users",
        ("sourcedId", "orgSourcedIds", "role", "givenName", "familyName"),
        ("status", "username", "email", "grades"),
        ("sourcedId", "role"),
        private=True,
    ),
    "classes": CsvSpec(
        "classes",
        ("sourcedId", "title", "schoolSourcedId"),
        ("status", "classCode", "subjects"),
        ("sourcedId", "title", "schoolSourcedId"),
    ),
    "enrollments": CsvSpec(
        "enrollments",
        ("sourcedId", "classSourcedId", "userSourcedId", "role"),
        ("status", "primary", "schoolSourcedId"),
        ("sourcedId", "classSourcedId", "userSourcedId", "role"),
    ),
}


@dataclass
class Roster:
    """A checked export: the rows for each app table (with their line), and per file how
    many rows became no app row (tobedeleted, roles and org types not loaded, teacher
    enrollments, repeated enrollments)."""

    district_id: str
    tables: dict[str, pa.Table]
    not_loaded: dict[str, int] = field(default_factory=dict)
    grades: dict[str, int] = field(default_factory=dict)  # students_with_several_grades, …

    def rows(self) -> dict[str, int]:
        return {name: table.num_rows for name, table in self.tables.items()}


# ---------------------------------------------------------------------------------------
# reading and checking the files (no warehouse)
# ---------------------------------------------------------------------------------------
def fail(spec: CsvSpec, line: int, column: str, problem: str) -> RosterError:
    return RosterError(f"{spec.file}.csv line {line}, column {column}: {problem}")


def first_bad_line(df: pl.DataFrame, bad: pl.Expr) -> int | None:
    """Line of the first row where `bad` holds (null counts as not bad)."""
    hit = df.filter(bad.fill_null(False)).select("line").head(1)
    return int(hit["line"][0]) if hit.height else None


def _csv_problem(exc: Exception) -> str:
    """What went wrong, without the file's text (polars quotes values in its messages)."""
    text = str(exc).lower()
    if "more fields" in text:
        return "a row has more fields than the header"
    if "utf-8" in text or "utf8" in text:
        return "it is not UTF-8"
    if "could not parse" in text or "quote" in text:
        return "a quoted field is not closed"
    return f"{type(exc).__name__}"


def read_csv(path: Path, spec: CsvSpec) -> pl.DataFrame:
    """All columns as text, header checked, values trimmed, empty as null, a `line` column."""
    try:
        raw = pl.read_csv(path, has_header=False, infer_schema=False)
    except pl.exceptions.NoDataError:
        raise RosterError(f"{spec.file}.csv is empty: it needs a header row") from None
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise RosterError(
            f"{spec.file}.csv is not well-formed CSV ({_csv_problem(exc)}): "
            "export it again as UTF-8 CSV"
        ) from None
    header = [(h or "").strip() for h in raw.row(0)]
    for i, name in enumerate(header):
        if name and name in header[:i]:
            raise fail(spec, 1, name, "this column appears twice in the header")
    for name in spec.required:
        if name not in header:
            raise RosterError(
                f"{spec.file}.csv line 1: the header has no column {name}, which the import needs"
            )
    body = raw.slice(1)
    columns: list[pl.Expr] = []
    for name in (*spec.required, *spec.optional):
        if name in header:
            value = pl.col(raw.columns[header.index(name)]).str.strip_chars()
            columns.append(pl.when(value == "").then(None).otherwise(value).alias(name))
        else:
            columns.append(pl.lit(None, pl.String).alias(name))
    # a line with no value at all (a blank line at the end of a file) is no row
    blank = pl.all_horizontal(pl.col(c).str.strip_chars().fill_null("") == "" for c in raw.columns)
    return (
        body.select(*columns, blank.alias("_blank"))
        .with_row_index("line", offset=2)
        .cast({"line": pl.Int64})
        .filter(~pl.col("_blank"))
        .drop("_blank")
    )


def read_export_manifest(directory: Path) -> None:
    """If there is a manifest: OneRoster 1.1, and bulk files only."""
    path = directory / "manifest.csv"
    if not path.is_file():
        return
    spec = CsvSpec("manifest", ("propertyName", "value"), (), ("propertyName",))
    df = read_csv(path, spec)
    for line, name, value in df.select("line", "propertyName", "value").iter_rows():
        value = (value or "").lower()
        if name == "oneroster.version" and value != "1.1":
            raise fail(spec, line, "value", f"oneroster.version is {value!r}; this reads 1.1")
        if name.startswith("file.") and name[5:] in SPECS and value != "bulk":
            raise fail(
                spec,
                line,
                "value",
                f"{name} is {value!r}: import-oneroster takes a bulk export of "
                "orgs, users, classes and enrollments",
            )
