"""Tests of the base modules: settings, errors, faults, tables."""
