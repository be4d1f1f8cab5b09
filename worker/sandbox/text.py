"""Text crossing the REPL boundary: valid Unicode, exact ``str``, bounded (both sides use it).

Standard library only: the host imports it without the REPL's module set.
"""

from __future__ import annotations

import re
from typing import Any

FINAL_MAX_CHARS = 1_000_000  # a final answer longer than this is cut, with a note saying so
ERROR_MAX_CHARS = 8_000
_SURROGATES = re.compile("[\ud800-\udfff]")


def clean(value: Any) -> Any:
    """Lone surrogates (legal in Python strings, not in UTF-8) replaced by U+FFFD, recursively
    through the lists and dicts of a decoded frame; every str is an exact str already (JSON)."""
    if type(value) is str:
        return value if value.isascii() else _SURROGATES.sub("\ufffd", value)
    if type(value) is list:
        return [clean(v) for v in value]
    if type(value) is dict:
        return {clean(k): clean(v) for k, v in value.items()}
    return value


def cap_final(value: str, limit: int = FINAL_MAX_CHARS) -> str:
    """``value`` if it fits; else its start and a note saying how much was cut, ``limit`` chars in all."""
    if len(value) <= limit:
        return value
    note = f"\n\n[answer cut: it had {len(value):,} characters; the first {{kept:,}} are shown]"
    kept = limit - len(note.format(kept=limit))
    return value[:kept] + note.format(kept=kept)


def cap(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[:limit]
