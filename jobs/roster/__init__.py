"""The new school year's rostering: a OneRoster CSV export read, checked and loaded into schema
app (SPEC §6, §8)."""
