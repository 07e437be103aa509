"""Tests of the commands as the operator meets them."""
