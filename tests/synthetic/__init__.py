"""Tests of jobs/synthetic (see the folder's modules)."""
