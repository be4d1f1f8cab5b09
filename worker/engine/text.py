"""Text that crosses a boundary (a provider request, an event, a terminal) must be valid UTF-8.

Python strings can hold lone surrogates (U+D800..U+DFFF), which no UTF-8 encoder accepts: one in a
cell's output or a prompt written by REPL code would otherwise fail far from its cause.
"""

import re
from typing import Any

_SURROGATES = re.compile("[\ud800-\udfff]")


def sanitize(text: object) -> str:
    """`text` as valid UTF-8: each lone surrogate becomes U+FFFD. Cheap when there is none."""
    if not isinstance(text, str):
        text = str(text)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATES.sub("\ufffd", text)
    return text


def sanitize_data(value: Any) -> Any:
    """Every str inside `value` (dicts, lists, tuples, keys included) sanitized, a str enum member
    (`worker.engine.vocabulary`) as its plain value; other values as they are."""
    if isinstance(value, str):
        return sanitize(value if type(value) is str else str(value))
    if isinstance(value, dict):
        return {sanitize_data(k): sanitize_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [sanitize_data(v) for v in value]
    return value
