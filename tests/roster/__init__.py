"""Tests of jobs/roster (see the folder's modules)."""
