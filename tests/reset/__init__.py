"""Tests of jobs/reset (see the folder's modules)."""
