"""Tests of jobs/warehouse (see the folder's modules)."""
