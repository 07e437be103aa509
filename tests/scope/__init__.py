"""Tests of jobs/scope (see the folder's modules)."""
