"""The reset of one district and of a run: the one verified pass that snapshots and
deletes, the runner and its view, the import syncs around it, and restore."""

from jobs.reset.onepass import take_snapshot
from jobs.reset.restore import restore
from jobs.reset.runner import run_reset
from jobs.reset.syncs import reset_status, resume_syncs

__all__ = ["reset_status", "restore", "resume_syncs", "run_reset", "take_snapshot"]
