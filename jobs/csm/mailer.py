"""Sending notices over SMTP: one connection for all of them, STARTTLS when the server offers
it (required with `--starttls`), and a login when a user is given (`--smtp-user`, the password
from EOY_SMTP_PASSWORD, never an option: a command line is seen by every user of the machine).
A password is never sent over a connection that is not encrypted."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage

from jobs.config import SMTP_PASSWORD_ENV, smtp_password
from jobs.errors import EoyError


class NoticeError(EoyError):
    """Notices could not be written or sent; the message says where and what to do."""


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = False  # required: refuse a server that does not offer it

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


def smtp_server(host: str, port: int, user: str | None, starttls: bool) -> SmtpServer:
    """The server of the command line, its password read from the environment."""
    user = (user or "").strip() or None
    password = smtp_password()
    if user and not password:
        raise NoticeError(f"--smtp-user {user} needs the password in {SMTP_PASSWORD_ENV}")
    if password and not user:
        raise NoticeError(f"{SMTP_PASSWORD_ENV} is set but no --smtp-user: give the user it is for")
    return SmtpServer(host, port, user, password, starttls)


def _said(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        text = exc.smtp_error
        said = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        return f"{exc.smtp_code} {' '.join(said.split())}"
    return " ".join(str(exc).split()) or type(exc).__name__


class Mailer:
    """One SMTP connection for all notices, opened at the first one to send."""

    def __init__(self, server: SmtpServer | None):
        self.server = server
        self.smtp: smtplib.SMTP | None = None

    def __enter__(self) -> Mailer:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.smtp is not None:
            try:
                self.smtp.quit()
            except (smtplib.SMTPException, OSError):
                self.smtp.close()

    def _open(self) -> smtplib.SMTP:
        assert self.server is not None
        server = self.server
        smtp = smtplib.SMTP(server.host, server.port, timeout=30)
        smtp.ehlo()
        encrypted = False
        if smtp.has_extn("starttls"):
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()
            encrypted = True
        elif server.starttls:
            smtp.close()
            raise NoticeError(
                f"SMTP {server.where} does not offer STARTTLS, which --starttls requires: "
                "nothing was sent"
            )
        if server.user:
            if not encrypted:
                smtp.close()
                raise NoticeError(
                    f"SMTP {server.where} does not offer STARTTLS: the password of "
                    f"--smtp-user {server.user} would cross the network in clear; nothing "
                    "was sent"
                )
            try:
                smtp.login(server.user, server.password or "")
            except smtplib.SMTPAuthenticationError as exc:
                smtp.close()
                raise NoticeError(
                    f"SMTP {server.where} refused the login of {server.user!r} "
                    f"({_said(exc)}): check --smtp-user and {SMTP_PASSWORD_ENV}; nothing was sent"
                ) from None
        return smtp

    def send(self, message: EmailMessage, what: str, sent_before: int) -> set[str]:
        """Send one message; the recipients the server refused (the others received it).
        A server that cannot be reached, or refuses the message itself, stops the command."""
        assert self.server is not None
        try:
            if self.smtp is None:
                self.smtp = self._open()
            return set(self.smtp.send_message(message))
        except smtplib.SMTPRecipientsRefused as exc:
            return set(exc.recipients)
        except NoticeError:
            raise
        except (smtplib.SMTPException, OSError) as exc:
            raise NoticeError(
                f"could not send {what} through SMTP {self.server.where}: {_said(exc)}; "
                f"{sent_before} sent before it are recorded, run the same command again to "
                "send the rest"
            ) from None
