"""Errors an operator can act on. The CLI prints them as one line and exits non-zero."""


class EoyError(Exception):
    """Base of every error that is the input's or the environment's fault, not a bug."""

    exit_code = 2
