"""Tests of jobs/csm (see the folder's modules)."""
