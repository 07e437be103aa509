"""`eoy-reset`, the command line: it parses, calls the stage that does the work, and prints the
result (tables, or one JSON document with --json). Commands are grouped by who uses them."""

from jobs.cli.entry import main

__all__ = ["main"]
