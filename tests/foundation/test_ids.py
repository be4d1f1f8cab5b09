"""rlmweb.ids.parse_id: the one parser for integer ids and counters from untrusted input."""

import pytest

from rlmweb.ids import parse_id


@pytest.mark.parametrize(("raw", "expected"), [
    ("0", 0), ("42", 42), (7, 7), ("9" * 18, int("9" * 18)),
    ("\u00b2", None), ("1\u00b3", None), ("\u0663", None), ("", None), (" 4", None), ("-1", None), ("+1", None),
    ("1.0", None), ("9" * 19, None), (10**18, None), (-3, None), (True, None), (None, None), (1.0, None), ([1], None),
])
def test_parse_id(raw, expected):
    assert parse_id(raw) == expected
