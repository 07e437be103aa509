"""Administrators' addresses for notices: one address per email field, read by a real parser,
and display names that cannot break a message.

An email field is a recipient only when it holds exactly one RFC 5322 address (`a@x, b@y`
would add a recipient the ledger does not count), with an ASCII local part (a UTF-8 one
needs SMTPUTF8, which few servers take) and a domain of valid labels (a non-ASCII domain is
sent in its IDNA form). Anything else is skipped and reported, in one line naming the
district and the educator, never the address: the roster must be corrected, and the other
administrators and districts are notified all the same.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.utils import getaddresses

_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


@dataclass(frozen=True)
class Recipient:
    """One administrator a notice goes to."""

    educator_id: str
    name: str
    username: str
    domain: str  # ASCII (IDNA)

    @property
    def address(self) -> str:
        return str(Address(username=self.username, domain=self.domain).addr_spec)

    @property
    def header(self) -> Address:
        """For a To header: the name is encoded as RFC 2047 wants when it is not ASCII."""
        return Address(display_name=self.name, username=self.username, domain=self.domain)


@dataclass(frozen=True)
class Skipped:
    """An administrator whose email field is not one usable address."""

    district_id: str
    educator_id: str
    reason: str

    def line(self) -> str:
        return (
            f"district {self.district_id!r}: administrator {self.educator_id!r} skipped, "
            f"{self.reason}; correct the email in the roster"
        )


def display_name(*parts: str | None) -> str:
    """A person's name on one line: line breaks and control characters become spaces."""
    joined = " ".join(p for p in parts if p)
    return " ".join(_CONTROL.sub(" ", joined).split())


def _domain(domain: str) -> str | None:
    """The domain in ASCII (IDNA for a non-ASCII one), or None when it is no host name."""
    try:
        ascii_domain = domain.encode("idna").decode("ascii") if not domain.isascii() else domain
    except UnicodeError:
        return None
    labels = ascii_domain.rstrip(".").split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        return None
    return ascii_domain.rstrip(".").lower()


def parse_address(raw: str | None) -> tuple[tuple[str, str] | None, str]:
    """((username, ASCII domain), "") when the field holds exactly one usable address, else
    (None, why)."""
    text = (raw or "").strip()
    if not text:
        return None, "no email"
    if _CONTROL.search(text):
        return None, "the email has a line break or control character in it"
    found = [a for _, a in getaddresses([text]) if a]
    if len(found) != 1:
        return None, f"the email field holds {len(found)} addresses, not one"
    local = text.rsplit("@", 1)[0]
    if not local.isascii():
        return None, "the email has non-ASCII characters before the @ (SMTPUTF8 is not used)"
    try:
        address = Address(addr_spec=text)
    except (ValueError, IndexError, TypeError, HeaderParseError):
        return None, "the email is not an address (name@domain)"
    if not address.username or not address.domain:
        return None, "the email is not an address (name@domain)"
    domain = _domain(address.domain)
    if domain is None:
        return None, "the email's domain is not a host name"
    return (address.username, domain), ""


def recipient(
    district_id: str, educator_id: str, first: str | None, last: str | None, email: str | None
) -> Recipient | Skipped:
    parsed, why = parse_address(email)
    if parsed is None:
        return Skipped(district_id, educator_id, why)
    return Recipient(educator_id, display_name(first, last), *parsed)
