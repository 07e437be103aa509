"""District ids as the literals a batch's statements compare with a district column."""

from __future__ import annotations

import pytest

from jobs.scope.sql import literals


def test_an_integer_column_is_compared_with_the_integers_own_text_forms_only() -> None:
    """A district's id is the text form of its key; for an integer column only ids that are
    an integer's own text form are kept ('007', '+7', '-0', ' 7', '²' name no row)."""
    assert literals(["7", "12", "-3", "0"], "int") == "7, 12, -3, 0"
    assert literals(["007", "+7", "-0", " 7", "7 ", "²", "d00001", "7"], "int") == "7"
    assert literals(["d00001"], "int") == "null"
    assert literals(["007", "7", "-12"], "bigint") == "7, -12"
    assert literals([], "int") == "null"


def test_a_text_column_is_compared_with_quoted_ids() -> None:
    assert literals(["d1", "o'brien"]) == "'d1', 'o''brien'"
    assert literals([]) == "null"
    with pytest.raises(ValueError, match="NUL"):
        literals(["d\x001"])
