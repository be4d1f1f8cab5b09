"""Integer ids and counters from untrusted text (query strings, JSON bodies, websocket messages).

`str.isdigit()` is true for characters such as '²' that `int()` refuses, and a 30-digit number
overflows the database's integer; both must be a 400, never a 500.
"""

MAX_DIGITS = 18  # below 2**63, the largest integer PostgreSQL and SQLite store


def parse_id(raw: object) -> int | None:
    """A non-negative integer given as an int or as ASCII decimal digits, else None."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw if 0 <= raw < 10**MAX_DIGITS else None
    if isinstance(raw, str) and raw.isascii() and raw.isdecimal() and len(raw) <= MAX_DIGITS:
        return int(raw)
    return None
