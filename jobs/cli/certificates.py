"""Certificates of disposition: the signing key, a district's certificate, and its check."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from jobs.cli.common import screen, settings_of
from jobs.cli.options import DistrictOpt, JsonOpt, SchoolYearOpt
from jobs.config import SIGNING_KEY_ENV
from jobs.output import CommandFailed, emit


def keygen(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="Folder for signing.key and signing.pub.")],
    as_json: JsonOpt = False,
) -> None:
    """Make the Ed25519 key pair that signs certificates: signing.key (mode 0600: keep it
    secret, point EOY_SIGNING_KEY at it) and signing.pub (give it to districts to check
    their certificates). An existing key is never replaced."""
    from jobs.snapshot.signing import generate_keypair

    pair = generate_keypair(out)
    doc = {
        "private_key_path": pair.private_key,
        "public_key_path": pair.public_key,
        "fingerprint_sha256": pair.fingerprint,
    }
    emit(
        doc,
        as_json,
        lambda: screen.out.print(
            f"Wrote {pair.private_key} (keep it secret) and {pair.public_key} (give it to "
            f"districts). Key fingerprint SHA-256 {pair.fingerprint}. Sign with it: "
            f"export {SIGNING_KEY_ENV}={pair.private_key}",
            highlight=False,
            soft_wrap=True,
        ),
    )


def certificate(
    ctx: typer.Context,
    district: DistrictOpt,
    school_year: SchoolYearOpt,
    out: Annotated[Path, typer.Option("--out", help="Folder for the certificate's files.")],
    kind: Annotated[
        str,
        typer.Option(
            "--kind",
            help="disposition (the data was deleted; default) or copy_destroyed (its "
            "snapshot was purged since).",
        ),
    ] = "disposition",
    as_json: JsonOpt = False,
) -> None:
    """A signed certificate for the district: certificate.json (canonical JSON),
    certificate.json.sig (its detached Ed25519 signature) and certificate.html.

    Issued from the ledger and checked against the snapshot's manifests, signed with the key
    EOY_SIGNING_KEY names and kept in the ledger; asked again for the same facts, the same
    certificate is written. A restored district gets none."""
    from jobs.snapshot.certificate import TITLES, certify

    written = certify(settings_of(ctx), district, school_year, kind, out)
    again = " (issued before for the same facts)" if written.reused else ""
    emit(
        asdict(written),
        as_json,
        lambda: screen.out.print(
            f"{TITLES[written.kind]}, district {district}, school year {school_year}{again}: "
            f"{written.json_path.parent}/ certificate.json, certificate.json.sig, "
            f"certificate.html. Issued {written.issued_at}, key SHA-256 "
            f"{written.key_fingerprint}.",
            highlight=False,
            markup=False,
            soft_wrap=True,
        ),
    )


def verify_certificate(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A certificate.json.")],
    public_key: Annotated[
        Path, typer.Option("--public-key", help="The signer's signing.pub (PEM).")
    ],
    signature: Annotated[
        Path | None,
        typer.Option("--signature", help="The detached signature. Default: FILE.sig."),
    ] = None,
    district: Annotated[
        str | None, typer.Option("--district", help="It must be this district's.")
    ] = None,
    school_year: Annotated[
        int | None, typer.Option("--school-year", help="It must be of this school year.")
    ] = None,
    offline: Annotated[
        bool,
        typer.Option("--offline", help="Check the signature only; reach no warehouse."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check a certificate: prints `valid`, or exits 1 with one line saying why. The
    signature needs only the file and the public key; where the warehouse and the snapshot
    can be reached, they must still say what the certificate says."""
    from jobs.snapshot.certificate_check import verify_certificate as check

    verdict = check(
        file,
        public_key,
        None if offline else settings_of(ctx),
        signature=signature,
        district_id=district,
        school_year=school_year,
    )
    problem = None if verdict.valid else f"invalid: {verdict.reason}"
    emit(asdict(verdict), as_json, lambda: print("valid") if verdict.valid else None, problem)
    for what, why in verdict.not_checked.items() if verdict.valid else ():
        screen.say("note", f"not compared with the {what}: {why}")
    if problem:
        raise CommandFailed(problem)
