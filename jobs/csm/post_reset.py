"""The post-reset notice (`notices`): once a district's reset has completed, each of
its administrators gets one message saying what was deleted, with the district's certificate
of disposition attached (certificate.html to read, certificate.json and its detached
signature certificate.json.sig to check) and, where snapshots are in a bucket and the CSM
shared the district's copy, a link to download it.

Never before the reset completed: only districts whose run is `completed` in the ledger get
one. Sent once per administrator and reset (a district reset again after a restore is a new
reset), recorded in eoy_runner.certificate_notices_sent by educator id and the certificate's
sha256, never an address. The certificate is the one issued already when the facts are
unchanged, else a new one signed with EOY_SIGNING_KEY; without a key and without one issued,
the district's notice waits, said in one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from jobs.config import Settings
from jobs.csm.addresses import Recipient, Skipped
from jobs.csm.mailer import Mailer
from jobs.csm.message import long_day, render_html, render_text, write_eml
from jobs.scope import current_scope
from jobs.scope.sql import districts_select
from jobs.snapshot.certificate import (
    DISPOSITION,
    Certificate,
    CertificateError,
    certificate_files,
    issue_certificate,
)
from jobs.snapshot.layout import SnapshotError, safe_segment
from jobs.snapshot.store import S3Store, is_object_root, store_for
from jobs.warehouse.connection import Warehouse
from jobs.warehouse.ledger import events, utcnow

FOLDER = "post-reset"  # <out>/<year>/post-reset/<district>/<educator>.eml
ATTACHMENT_TYPES = {
    "certificate.json": ("application", "json"),
    "certificate.json.sig": ("application", "octet-stream"),
    "certificate.html": ("text", "html"),
}
MIN_LINK = timedelta(minutes=5)  # a link that would expire sooner is not worth sending


@dataclass(frozen=True)
class PostResetNotice:
    """One administrator's post-reset notice, as `notices` reports it (no address)."""

    district_id: str
    district_name: str | None
    educator_id: str | None
    status: str  # written, sent, already_sent, refused, unreachable, no_certificate
    message_id: str | None = None
    path: Path | None = None
    certificate_sha256: str | None = None
    reason: str | None = None


def post_reset_notices(
    wh: Warehouse,
    mailer: Mailer,
    settings: Settings,
    year: int,
    folder: Path,
    sender: str,
    admins: dict[str, list[Recipient]],
    skipped: list[Skipped],
) -> list[PostResetNotice]:
    """Write (and with a mailer's server, send once) the post-reset notice of every district
    whose reset of the school year completed."""
    runs = wh.query_dicts(
        "select r.district_id, d.name, r.started_at, r.finished_at "
        f"from eoy_runner.reset_runs as r left join ({districts_select(current_scope())}) as d "
        "on d.district_id = r.district_id "
        "where r.school_year = %s and r.status = 'completed' order by r.district_id",
        [year],
    )
    sent = _sent(wh, year)
    out: list[PostResetNotice] = []
    for run in runs:
        district, name = str(run["district_id"]), run["name"]
        to = admins.get(district, [])
        if not to:
            out.append(PostResetNotice(district, name, None, "unreachable"))
            continue
        try:
            cert = issue_certificate(settings, district, year, DISPOSITION, wh=wh)
        except CertificateError as exc:
            out.append(PostResetNotice(district, name, None, "no_certificate", reason=str(exc)))
            continue
        link = share_link(wh, settings, district, year)
        for admin in to:
            message = compose_post_reset(cert, admin, sender, link)
            key = (district, admin.educator_id, run["started_at"])
            status = _deliver(wh, mailer, message, key, sent, cert, skipped, out)
            path = write_eml(
                folder / FOLDER / safe_segment(district),
                admin.educator_id,
                message,
                f"the post-reset notice of district {district!r}",
            )
            out.append(
                PostResetNotice(
                    district,
                    name,
                    admin.educator_id,
                    status,
                    str(message["Message-ID"]),
                    path,
                    cert.sha256,
                )
            )
    return out


def _deliver(
    wh: Warehouse,
    mailer: Mailer,
    message: EmailMessage,
    key: tuple[str, str, datetime],
    sent: dict[tuple[str, str, datetime], str],
    cert: Certificate,
    skipped: list[Skipped],
    done: list[PostResetNotice],
) -> str:
    district, educator, started = key
    if mailer.server is None:
        return "written"
    if key in sent:
        message.replace_header("Message-ID", sent[key])  # the file keeps the one sent
        return "already_sent"
    before = sum(1 for n in done if n.status == "sent")
    refused = mailer.send(message, f"the post-reset notice of district {district!r}", before)
    if refused:
        skipped.append(Skipped(district, educator, "the SMTP server refused it"))
        return "refused"
    wh.execute(
        "insert into eoy_runner.certificate_notices_sent (district_id, school_year, "
        "educator_id, reset_started_at, document_sha256, message_id, sent_at) "
        "values (%s, %s, %s, %s, %s, %s, %s)",
        [
            district,
            cert.school_year,
            educator,
            started,
            cert.sha256,
            str(message["Message-ID"]),
            utcnow(),
        ],
    )
    return "sent"


def _sent(wh: Warehouse, year: int) -> dict[tuple[str, str, datetime], str]:
    """The Message-ID of each post-reset notice sent, by district, educator and reset."""
    return {
        (str(d), str(e), started): str(message_id)
        for d, e, started, message_id in wh.query(
            "select district_id, educator_id, reset_started_at, message_id "
            "from eoy_runner.certificate_notices_sent where school_year = %s",
            [year],
        )
    }


def share_link(
    wh: Warehouse, settings: Settings, district_id: str, year: int
) -> tuple[str, datetime] | None:
    """A link to the copy the CSM shared (bucket roots only), valid no longer than the share
    was: (link, until when), or None when there is no copy or its share has expired."""
    if not is_object_root(settings.snapshot_root):
        return None
    shares = [
        e["detail"]
        for e in events(wh, district_id, year, "share")
        if e["status"] == "completed" and e["detail"].get("copy")
    ]
    if not shares:
        return None
    copy, until = str(shares[-1]["copy"]), datetime.fromisoformat(shares[-1]["expires_at"])
    until = until.replace(tzinfo=UTC) if until.tzinfo is None else until
    left = until - datetime.now(UTC)
    store = store_for(copy, settings)
    if left < MIN_LINK or not isinstance(store, S3Store):
        return None
    try:
        folder, name = copy.rsplit("/", 1)
        if name not in store.files(folder):
            return None  # purged since
        return store.link(copy, left), until
    except SnapshotError:
        return None  # the notice goes without a link; the CSM can share again


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _blocks(
    cert: Certificate, admin: Recipient, link: tuple[str, datetime] | None
) -> tuple[str, list[tuple[str, Any]]]:
    doc = cert.body
    name = doc["district"].get("name") or doc["district"]["id"]
    label = doc["school_year_label"]
    completed = _time(doc["reset"]["completed_at"])
    keep_until = max(_time(p["retain_until"]) for p in doc["snapshot"]["parts"])
    if link is not None:
        copy = (
            f"Download a copy of this data (a zip of spreadsheet files) with this link until "
            f"{long_day(link[1].date())}: {link[0]}"
        )
    else:
        copy = (
            "Before the delete we kept a verified copy of exactly this data, until "
            f"{long_day(keep_until.date())}. If you need it, ask your CSM before then: they "
            "will send you a zip of spreadsheet files."
        )
    subject = f"{name}: your {label} student data was deleted (certificate attached)"
    blocks: list[tuple[str, Any]] = [
        ("p", f"Dear {admin.name or f'administrator of {name}'},"),
        ("h", "Your end-of-year data reset is complete"),
        (
            "p",
            f"The end-of-year data reset of {name} for the {label} school year completed on "
            f"{long_day(completed.date())}: {int(doc['rows_deleted']):,} rows of student data "
            "were deleted, as listed below. Educator accounts and organizations were kept.",
        ),
        (
            "table",
            [("Data", "Rows deleted")]
            + [(t["table"], f"{int(t['rows_deleted']):,}") for t in doc["tables"]],
        ),
        ("h", "Your copy of the year's data"),
        ("p", copy),
        ("h", "Your certificate of disposition"),
        (
            "p",
            "Attached is your certificate of disposition: certificate.html to read or print, "
            "and certificate.json with its signature certificate.json.sig, which prove it was "
            "issued by us and not changed since. It was signed with the key whose SHA-256 "
            f"fingerprint is {cert.key_fingerprint}; your CSM can give you that public key to "
            "check it with.",
        ),
        ("p", "Your Customer Success Manager"),
    ]
    return subject, blocks


def compose_post_reset(
    cert: Certificate, admin: Recipient, sender: str, link: tuple[str, datetime] | None
) -> EmailMessage:
    """One administrator's message: text and HTML, and the certificate's three files."""
    subject, blocks = _blocks(cert, admin, link)
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender.strip()
    message["To"] = admin.header
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain=sender.strip().rsplit("@", 1)[-1])
    message["X-EOY-District"] = cert.district_id
    message["X-EOY-Notice"] = "post-reset"
    message["X-EOY-Certificate-SHA256"] = cert.sha256
    message.set_content(render_text(blocks))
    message.add_alternative(render_html(subject, blocks), subtype="html")
    for filename, data in certificate_files(cert).items():
        kind, sub = ATTACHMENT_TYPES[filename]
        message.add_attachment(data, maintype=kind, subtype=sub, filename=filename)
    return message
