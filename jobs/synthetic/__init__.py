"""Synthetic districts for demos, tests and benchmarks: rows shaped like a real customer base,
their words, and the loader."""

from jobs.synthetic.generate import generate_districts

__all__ = ["generate_districts"]
