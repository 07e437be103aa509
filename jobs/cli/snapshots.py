"""Snapshots: verify one, the district's copy (a file, or a link to it), purge past the
recovery window, legal holds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from jobs.cli.common import at_terminal, screen, settings_of
from jobs.cli.options import DistrictOpt, FormatOpt, JsonOpt, SchoolYearOpt, YesOpt
from jobs.output import CommandFailed, emit


def verify_snapshot(
    ctx: typer.Context,
    directory: Annotated[
        str, typer.Argument(help="A district's snapshot folder, or its s3://bucket/… prefix.")
    ],
    against_source: Annotated[
        bool,
        typer.Option("--against-source", help="Also compare with the rows in the warehouse."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Re-read every file of a snapshot and check it against its manifest."""
    from jobs.snapshot.verify import render_verify, snapshot_location
    from jobs.snapshot.verify import verify_snapshot as verify

    settings = settings_of(ctx)
    location = snapshot_location(directory, settings)
    result = verify(location, settings=settings if against_source else None)
    problem = None
    if not result["ok"]:
        shown = location if isinstance(location, str) else directory
        problem = f"snapshot {shown} failed verification: {result['problems'][0]}"
    emit(result, as_json, lambda: render_verify(screen.out, result), error=problem)
    if problem:
        raise CommandFailed(problem)


def export(
    ctx: typer.Context,
    district: DistrictOpt,
    school_year: SchoolYearOpt,
    fmt: FormatOpt = "csv",
    out: Annotated[Path, typer.Option("--out", help="Folder to write into.")] = Path("."),
    force: Annotated[
        bool, typer.Option("--force", help="Replace a copy already in the --out folder.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """A zip of a district's data for the district: from the warehouse, or after its reset from
    its snapshot parts. An existing copy is kept unless --force."""
    from jobs.snapshot.copy import export_copy

    doc = export_copy(settings_of(ctx), district, school_year, fmt, out, force)
    emit(doc, as_json, lambda: screen.out.print(f"Wrote {doc['path']} ({doc['source']})."))


def purge_snapshots(
    ctx: typer.Context,
    older_than: Annotated[
        int, typer.Option("--older-than", min=0, help="Days past which a snapshot goes.")
    ] = 90,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be purged; remove nothing.")
    ] = False,
    yes: YesOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove snapshots past the recovery window, except districts under a legal hold.

    Lists the snapshots that would go, then asks for a typed confirmation at a terminal;
    elsewhere it needs --yes. Each purge is recorded: status, export and report say when.
    """
    from jobs.reset.view import purge_certificate_note, render_purge, render_purge_list
    from jobs.snapshot.layout import SnapshotError
    from jobs.snapshot.retention import purge_snapshots as purge
    from jobs.snapshot.retention import purge_totals
    from jobs.terminal import typed_confirmation

    if not (dry_run or yes or at_terminal(as_json)):
        raise SnapshotError(
            "refusing to purge snapshots without --yes or a confirmation at a terminal: "
            "list them with --dry-run, then purge with --yes"
        )

    def confirm(going: list[dict[str, Any]]) -> None:
        render_purge_list(screen.out, going)
        n = len(going)
        if not typed_confirmation(f"purge {'them' if n != 1 else 'it'}", str(n)):
            raise SnapshotError("confirmation did not match: no snapshot was purged")

    doc = purge(
        settings_of(ctx),
        older_than_days=older_than,
        dry_run=dry_run,
        confirm=None if yes else confirm,
    )
    doc["totals"] = purge_totals(doc)
    note = purge_certificate_note(doc)
    if note:
        screen.say("note", note)
    emit(doc, as_json, lambda: render_purge(screen.out, doc))


def hold(
    ctx: typer.Context,
    district: DistrictOpt,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (no student PII).")] = None,
) -> None:
    """Put a district's snapshots under legal hold: purge-snapshots leaves them."""
    from jobs.snapshot.retention import set_hold

    doc = set_hold(settings_of(ctx), district, held=True, reason=reason)
    again = " (it was already)" if doc["was_held"] else ""
    screen.out.print(f"District {district} is under legal hold{again}.", highlight=False)


def release(ctx: typer.Context, district: DistrictOpt) -> None:
    """Lift a district's legal hold."""
    from jobs.snapshot.retention import set_hold

    doc = set_hold(settings_of(ctx), district, held=False)
    if doc["was_held"]:
        screen.out.print(f"District {district} is no longer under legal hold.", highlight=False)
    else:
        screen.out.print(
            f"District {district} was not under legal hold: nothing to release.", highlight=False
        )


def share(
    ctx: typer.Context,
    district: DistrictOpt,
    school_year: SchoolYearOpt,
    expires: Annotated[
        str, typer.Option("--expires", help="How long the link works: 7d, 12h, 30m (up to 7d).")
    ] = "7d",
    fmt: FormatOpt = "csv",
    by: Annotated[
        str | None, typer.Option("--by", help="Who shares it (default: the login name).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """The district's copy next to its snapshot in the object store, and a link to download it
    that expires. The ledger records who shared what and until when (never the link)."""
    from jobs.snapshot.share import parse_expiry, share_copy

    doc = share_copy(
        settings_of(ctx), district, school_year, fmt, parse_expiry(expires), shared_by=by
    )

    def render() -> None:
        screen.out.print(
            f"District {district}, school year {school_year}: {doc['copy']} "
            f"({doc['format']}, {doc['rows_total']:,} rows). The link works until "
            f"{doc['expires_at']} UTC:",
            highlight=False,
        )
        print(doc["link"])

    emit(doc, as_json, render)
