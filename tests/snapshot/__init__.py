"""Tests of jobs/snapshot (see the folder's modules)."""
