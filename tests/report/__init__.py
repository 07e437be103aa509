"""Tests of jobs/report (see the folder's modules)."""
