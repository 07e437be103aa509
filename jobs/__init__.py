"""eoy-reset: the end-of-year student data reset of the math suite."""

__version__ = "0.1.0"
