"""The readable form of a certificate (`certificate.html`): one self-contained page made from
the signed JSON document alone, printable, with no script and nothing fetched. Every value is
escaped: a district's name is data, not markup. The page is not what is signed; it says so
and how to check the document that is."""

from __future__ import annotations

from html import escape
from typing import Any

CSS = """
:root { --ink:#1b1b1b; --muted:#5f6368; --line:#d9d9d9; --seal:#1a4d8f; }
* { box-sizing: border-box; }
body { font: 14px/1.5 Georgia, "Times New Roman", serif; color: var(--ink);
       margin: 0 auto; max-width: 900px; padding: 32px; }
header { border-bottom: 3px double var(--seal); padding-bottom: 12px; margin-bottom: 16px; }
header h1 { font-size: 26px; margin: 0 0 6px; color: var(--seal); }
header p { margin: 0; color: var(--muted); }
h2 { font-size: 17px; margin: 22px 0 6px; color: var(--seal); }
p.statement { font-size: 15px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 8px 0; }
dt { color: var(--muted); }
dd { margin: 0; }
table { border-collapse: collapse; width: 100%; margin: 6px 0; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left;
         vertical-align: top; overflow-wrap: anywhere; }
th { background: #f3f5f9; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.short, th.short { white-space: nowrap; overflow-wrap: normal; }
code, .hash { font: 12px ui-monospace, Menlo, Consolas, monospace; overflow-wrap: anywhere; }
footer { border-top: 1px solid var(--line); margin-top: 24px; padding-top: 8px;
         color: var(--muted); font-size: 12px; }
@media print { body { padding: 0; } }
"""


def _e(value: Any) -> str:
    return escape("—" if value is None else str(value))


def _when(value: Any) -> str:
    """`2023-07-28T10:00:00Z` as `2023-07-28 10:00 UTC` (text)."""
    if not isinstance(value, str) or "T" not in value:
        return "—" if value is None else str(value)
    day, time = value.rstrip("Z").split("T", 1)
    return f"{day} {time[:5]} UTC"


def _day(value: Any) -> str:
    return escape(_when(value))


def _table(head: list[tuple[str, str]], rows: list[list[str]]) -> str:
    """head: (title, css class); rows: cells already escaped."""
    if not rows:
        return '<p class="note">None.</p>'
    th = "".join(f'<th class="{k}">{escape(t)}</th>' for t, k in head)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="{k}">{c}</td>' for (_, k), c in zip(head, r, strict=True))
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _who(doc: dict[str, Any]) -> str:
    district = doc["district"]
    name = district.get("name") or district["id"]
    return f"{name} (district {district['id']})"


def statement(doc: dict[str, Any]) -> str:
    """The certificate's statement in words, from its facts."""
    who, label = _who(doc), doc["school_year_label"]
    if doc["kind"] == "disposition":
        parts = doc["snapshot"]["parts"]
        purged = [p for p in parts if p["purged_at"]]
        kept = (
            "It has since been destroyed."
            if parts and len(purged) == len(parts)
            else "It is kept until the retention date below, then destroyed, unless a legal "
            "hold keeps it longer."
        )
        return (
            f"The student data of {who} for the {label} school year, {doc['rows_deleted']:,} "
            f"rows in the {len(doc['tables'])} tables listed below, was deleted by the "
            f"end-of-year data reset that completed on {_when(doc['reset']['completed_at'])}. "
            "Before the delete, a snapshot of exactly the deleted rows was written and "
            f"verified, so the district could have a copy. {kept} The data kept by the reset "
            "(educator accounts, organizations) was checked unchanged."
        )
    destroyed = doc["destroyed"]
    rows = sum(int(p["rows_total"]) for p in destroyed)
    tail = (
        "No other snapshot of it is kept."
        if not doc["still_kept"]
        else f"{len(doc['still_kept'])} later part(s), listed below, are still kept."
    )
    return (
        f"The snapshot kept of the student data of {who} for the {label} school year "
        f"({len(destroyed)} part(s), {rows:,} rows) was destroyed after its retention "
        f"period, on the dates listed below, with the district's shared copy where one "
        f"was made. {tail}"
    )


def _disposition(doc: dict[str, Any]) -> str:
    tables = _table(
        [("Table", ""), ("Rows deleted", "num"), ("By part", "")],
        [
            [
                _e(t["table"]),
                _e(f"{t['rows_deleted']:,}"),
                _e(", ".join(f"{p} {n:,}" for p, n in t["rows_by_part"].items())),
            ]
            for t in doc["tables"]
        ],
    )
    parts = _table(
        [("Part", "short"), ("Location", "hash"), ("Manifest SHA-256", "hash"),
         ("Taken", ""), ("Retained until", ""), ("Purged", "short")],
        [
            [_e(p["part"]), _e(p["location"]), _e(p["manifest_sha256"]), _day(p["created_at"]),
             _day(p["retain_until"]), _day(p["purged_at"])]
            for p in doc["snapshot"]["parts"]
        ],
    )  # fmt: skip
    steps = _table(
        [("Step", ""), ("Part", ""), ("When", "")],
        [[_e(s["step"]), _e(s.get("part", "")), _day(s["at"])] for s in doc["reset"]["steps"]],
    )
    approval = doc.get("approval")
    approved = (
        f'<dl><dt>Plan SHA-256</dt><dd class="hash">{_e(approval["plan_sha256"])}</dd>'
        f"<dt>Approved by</dt><dd>{_e(approval['approved_by'])}</dd>"
        f"<dt>Approved at</dt><dd>{_day(approval['approved_at'])}</dd></dl>"
        if approval
        else "<p>The reset ran without an approved plan: its operator confirmed it.</p>"
    )
    return (
        "<h2>The reset</h2><dl>"
        f"<dt>Reset date</dt><dd>{_e(doc['effective_reset_date'])}</dd>"
        f"<dt>Started</dt><dd>{_day(doc['reset']['started_at'])}</dd>"
        f"<dt>Completed</dt><dd>{_day(doc['reset']['completed_at'])}</dd>"
        f"<dt>Rows deleted</dt><dd>{int(doc['rows_deleted']):,}</dd></dl>"
        f"<h2>Deleted, table by table</h2>{tables}"
        f"<h2>The snapshot kept before the delete</h2>{parts}"
        f'<p class="note">Retention: {_e(doc["snapshot"]["retention_days"])} days after '
        "each part was taken.</p>"
        f"<h2>Steps</h2>{steps}<h2>Approval</h2>{approved}"
    )


def _copy_destroyed(doc: dict[str, Any]) -> str:
    destroyed = _table(
        [("Part", "short"), ("Location", "hash"), ("Manifest SHA-256", "hash"),
         ("Taken", ""), ("Rows", "num"), ("Destroyed", "")],
        [
            [_e(p["part"]), _e(p["location"]), _e(p["manifest_sha256"]), _day(p["created_at"]),
             _e(f"{p['rows_total']:,}"), _day(p["purged_at"])]
            for p in doc["destroyed"]
        ],
    )  # fmt: skip
    kept = _table(
        [("Part", "short"), ("Location", "hash"), ("Taken", ""), ("Rows", "num")],
        [
            [_e(p["part"]), _e(p["location"]), _day(p["created_at"]), _e(f"{p['rows_total']:,}")]
            for p in doc["still_kept"]
        ],
    )
    copies = _table(
        [("Shared copy", "hash"), ("Shared", ""), ("Removed", "")],
        [
            [_e(c["location"]), _day(c["shared_at"]), _day(c["removed_at"])]
            for c in doc["shared_copies"]
        ],
    )
    return (
        f"<h2>Destroyed</h2>{destroyed}<h2>Still kept</h2>{kept}"
        f"<h2>The district's shared copies</h2>{copies}"
    )


def render_certificate(doc: dict[str, Any]) -> str:
    """The whole page of a certificate document."""
    body = _disposition(doc) if doc["kind"] == "disposition" else _copy_destroyed(doc)
    key = doc["signing_key"]
    title = f"{doc['title']} — {_who(doc)}, school year {doc['school_year_label']}"
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{escape(doc['title'])}</h1>"
        f"<p>{escape(_who(doc))} · school year {_e(doc['school_year_label'])} · issued "
        f"{_day(doc['issued_at'])}</p></header>"
        f'<p class="statement">{escape(statement(doc))}</p>{body}'
        "<h2>Signature</h2><dl>"
        f"<dt>Algorithm</dt><dd>{_e(key['algorithm'])}</dd>"
        f'<dt>Key fingerprint</dt><dd class="hash">SHA-256 {_e(key["fingerprint_sha256"])}</dd>'
        f"<dt>Issued by</dt><dd>{_e(doc['issuer']['tool'])} {_e(doc['issuer']['version'])}</dd>"
        "</dl><footer><p>This page shows certificate.json, the signed document; the signature "
        "is certificate.json.sig, over its exact bytes. Check it with the public key whose "
        "fingerprint is above: <code>eoy-reset verify-certificate certificate.json "
        "--public-key signing.pub</code>, or with OpenSSL 3: <code>openssl pkeyutl -verify "
        "-pubin -inkey signing.pub -rawin -in certificate.json -sigfile "
        "certificate.json.sig</code>.</p><p>Counts, dates and the ids of organizations only: "
        "this certificate holds no student data.</p></footer></body></html>\n"
    )
