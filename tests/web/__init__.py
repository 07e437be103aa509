"""Tests of jobs/web (see the folder's modules)."""
