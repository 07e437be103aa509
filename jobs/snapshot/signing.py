"""Ed25519 keys and detached signatures for certificates (`keygen`, `certificate`,
`verify-certificate`), with the `cryptography` library.

Keys are PEM files: `signing.key` (PKCS#8, unencrypted, mode 0600: its file mode is its
protection, like an SSH key's) and `signing.pub` (SubjectPublicKeyInfo). A key's fingerprint
is the SHA-256 of its raw 32 public bytes, in hex. A signature is the raw 64 bytes over the
exact bytes of a canonical JSON document (sorted keys, no insignificant whitespace, UTF-8),
so anyone can check it with any Ed25519 tool, e.g. OpenSSL 3:
`openssl pkeyutl -verify -pubin -inkey signing.pub -rawin -in certificate.json
-sigfile certificate.json.sig`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from jobs.config import SIGNING_KEY_ENV, signing_key_setting
from jobs.errors import EoyError

PRIVATE_NAME = "signing.key"
PUBLIC_NAME = "signing.pub"
ALGORITHM = "Ed25519"
SIGNATURE_BYTES = 64
PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644
# a key file readable or writable by anyone but its owner is refused
LOOSE_BITS = 0o077


class SigningError(EoyError):
    """A key or signature file cannot be used; the message says which and what to do."""


@dataclass(frozen=True)
class KeyPair:
    """The files `keygen` wrote and the public key's fingerprint."""

    private_key: Path
    public_key: Path
    fingerprint: str


def canonical_json(doc: dict[str, Any]) -> bytes:
    """The one byte form of a document: sorted keys, no insignificant whitespace, UTF-8."""
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def fingerprint(public_key: Ed25519PublicKey) -> str:
    """SHA-256 of the raw 32-byte public key, hex."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def generate_keypair(out: Path) -> KeyPair:
    """A new key pair in `out` (created 0700 when missing). An existing key is never
    replaced: a certificate signed with it could no longer be checked."""
    out = Path(out)
    private_path, public_path = out / PRIVATE_NAME, out / PUBLIC_NAME
    for path in (private_path, public_path):
        if path.exists():
            raise SigningError(
                f"{path} exists already: keep it (certificates signed with it are checked "
                "with its public key), or choose another --out"
            )
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    try:
        if not out.exists():
            out.mkdir(mode=0o700, parents=True)
        _write_new(private_path, private_pem, PRIVATE_MODE)
        _write_new(public_path, public_pem, PUBLIC_MODE)
    except OSError as exc:
        raise SigningError(
            f"cannot write the key pair into {out}: {exc.strerror or exc}; choose a writable --out"
        ) from None
    return KeyPair(private_path, public_path, fingerprint(key.public_key()))


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create the file with its mode from the start (never readable by others meanwhile)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, mode)  # whatever the umask took away


def signing_key_path() -> Path | None:
    """The private key EOY_SIGNING_KEY names, or None when it is not set."""
    value = signing_key_setting()
    return Path(value).expanduser() if value else None


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 private key of a PEM file that only its owner can read."""
    data = _read_key_file(path, f"the signing key {path} ({SIGNING_KEY_ENV})")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError(
            f"{path} ({SIGNING_KEY_ENV}) is not an unencrypted Ed25519 private key in PEM: "
            "make one with `eoy-reset keygen --out DIR` and point EOY_SIGNING_KEY at "
            "DIR/signing.key"
        )
    mode = path.stat().st_mode & 0o777
    if mode & LOOSE_BITS:
        raise SigningError(
            f"the signing key {path} ({SIGNING_KEY_ENV}) is open to others (mode {mode:o}): "
            f"`chmod 600 {path}`, and make a new key pair if others may have read it"
        )
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """The Ed25519 public key of a PEM file (`signing.pub`)."""
    data = _read_key_file(path, f"--public-key {path}")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningError(
            f"--public-key {path} is not an Ed25519 public key in PEM: give the signing.pub "
            "that `eoy-reset keygen` wrote beside the private key"
        )
    return key


def _read_key_file(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise SigningError(f"{what} does not exist: give the path of the key file") from None
    except IsADirectoryError:
        raise SigningError(f"{what} is a folder: give the path of the key file") from None
    except OSError as exc:
        raise SigningError(f"{what} cannot be read: {exc.strerror or exc}") from None


def sign(key: Ed25519PrivateKey, data: bytes) -> bytes:
    return key.sign(data)


def signature_matches(key: Ed25519PublicKey, data: bytes, signature: bytes) -> bool:
    if len(signature) != SIGNATURE_BYTES:
        return False
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True
