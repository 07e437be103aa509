"""What the analyst and the compliance officer read: the HTML report with its charts, and the
ready questions of `analyses/`."""

from jobs.report.html import write_report
from jobs.report.query import run_query

__all__ = ["run_query", "write_report"]
