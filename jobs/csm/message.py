"""What every notice shares: days in words, the message body as text and HTML from one list
of blocks, and the .eml file it is kept in."""

from __future__ import annotations

import os
from datetime import date
from email.message import EmailMessage
from email.policy import SMTP
from html import escape
from pathlib import Path
from typing import Any

from jobs.csm.mailer import NoticeError
from jobs.snapshot.layout import safe_segment


def long_day(value: date) -> str:
    return f"{value:%A}, {value:%B} {value.day}, {value.year}"


def render_text(blocks: list[tuple[str, Any]]) -> str:
    out: list[str] = []
    for kind, body in blocks:
        if kind == "h":
            out += ["", body, "-" * len(body)] if out and out[-1] else [body, "-" * len(body)]
        elif kind == "p":
            out += [body, ""]
        elif kind == "ul":
            out += [f"  - {item}" for item in body] + [""]
        elif kind == "table":
            width = max(len(a) for a, _ in body)
            out += [f"  {a.ljust(width)}  {b}" for a, b in body] + [""]
    return "\n".join(out).strip() + "\n"


def render_html(subject: str, blocks: list[tuple[str, Any]]) -> str:
    parts = []
    for kind, body in blocks:
        if kind == "h":
            parts.append(f"<h2>{escape(body)}</h2>")
        elif kind == "p":
            parts.append(f"<p>{escape(body)}</p>")
        elif kind == "ul":
            parts.append("<ul>" + "".join(f"<li>{escape(i)}</li>" for i in body) + "</ul>")
        elif kind == "table":
            head, *rows = body
            parts.append(
                '<table border="1" cellpadding="4" cellspacing="0"><thead><tr>'
                + "".join(f"<th>{escape(c)}</th>" for c in head)
                + "</tr></thead><tbody>"
                + "".join(f"<tr><td>{escape(a)}</td><td>{escape(b)}</td></tr>" for a, b in rows)
                + "</tbody></table>"
            )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(subject)}</title></head><body>{''.join(parts)}</body></html>\n"
    )


def write_eml(folder: Path, name: str, message: EmailMessage, what: str | None = None) -> Path:
    """`<folder>/<name>.eml` (0600: it holds educators' addresses), CRLF line ends."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{safe_segment(name)}.eml"
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(message.as_bytes(policy=SMTP))
        os.replace(tmp, path)
    except OSError as exc:
        raise NoticeError(
            f"cannot write {what or f'the notice of district {name!r}'} into {folder}: "
            f"{exc.strerror or exc}; choose a writable --out"
        ) from None
    return path
