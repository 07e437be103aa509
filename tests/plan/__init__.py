"""Tests of jobs/plan (see the folder's modules)."""
