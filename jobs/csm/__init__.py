"""The CSM's side: a district's requested reset date, checked by the rules at once, and the
reset notice each district's administrators get (request-date, notices)."""

from jobs.csm.notices import make_notices
from jobs.csm.requests import request_date

__all__ = ["make_notices", "request_date"]
