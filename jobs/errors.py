"""Errors an operator can act on. The CLI prints them as one line and exits non-zero."""


class EoyError(Exception):
    """Base of every error that is the input's or the environment's fault, not a bug."""

    exit_code = 2


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
