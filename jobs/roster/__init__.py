"""The new school year's rostering: a OneRoster CSV export read, checked and loaded into schema
app."""

from jobs.roster.check import read_roster
from jobs.roster.load import import_oneroster

__all__ = ["import_oneroster", "read_roster"]
