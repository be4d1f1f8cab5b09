"""REPL snapshots: a REPL's plain-data variables as tagged JSON, and back into another REPL.

What is carried: values whose type is exactly ``str``, ``int``, ``float``, ``bool``, ``None``,
``list``, ``tuple``, ``dict``, ``set`` or ``frozenset``, nested up to ``MAX_DEPTH`` levels (decided on
exact types, so no subclass and no REPL-defined ``__eq__``/``__hash__``/``__iter__`` ever runs).
Functions, classes, their instances, modules, and whatever would pass the size cap are not carried;
each is listed with the reason.

Encoding (JSON, never pickle): lists are JSON arrays; every other container is an object with one
tag key, ``{"t": [...]}`` a tuple, ``{"set": [...]}``, ``{"fs": [...]}``, ``{"d": [[key, value], ...]}``
a dict (keys of any hashable plain type), ``{"f": "nan" | "inf" | "-inf"}`` a float JSON cannot
spell. Any other object is invalid.

Where each half runs: ``take`` in a forked, non-committing cell process (it reads REPL values);
``restore_into`` in a committing cell process (it writes the REPL's globals); ``validate`` on the
host, on what a cell process sent and on what a file holds, before it is written or restored.
Standard library only: the host imports it without the REPL's module set.
"""

from __future__ import annotations

import json
import math
from typing import Any

FORMAT = "rlmweb-snapshot"
VERSION = 1
MAX_DEPTH = 32
DEFAULT_MAX_BYTES = 64 * 1024**2
# What the REPL holds anyway, or must never be overwritten from a file.
NOT_CARRIED_NAMES = frozenset({"context", "context_names"})
RESERVED_NAMES = frozenset({"llm_query", "llm_query_batched", "rlm_query", "FINAL", "FINAL_VAR", "SHOW_VARS",
                            "context", "context_names"})
MAX_NAME_CHARS = 200
_INT_DIGITS = 4000  # str(int) refuses past 4,300 digits
_FLOATS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
_TAGS = frozenset({"t", "set", "fs", "d", "f"})


class NotPlain(Exception):
    """A value that a snapshot does not carry (the message says why)."""


class TooLarge(NotPlain):
    pass


class SnapshotInvalid(ValueError):
    """Snapshot data that does not follow the encoding (a damaged or forged file, a hostile cell)."""


def carried_name(name: object) -> bool:
    return (type(name) is str and name.isidentifier() and not name.startswith("_")
            and name not in RESERVED_NAMES and len(name) <= MAX_NAME_CHARS)


# ---------------------------------------------------------------------------------------------
# encoding (cell process)
# ---------------------------------------------------------------------------------------------
def encode(value: Any, budget: list[int], depth: int = 0) -> Any:
    """``value`` in the tagged encoding; ``budget[0]`` (bytes left) is spent as it goes."""
    if depth > MAX_DEPTH:
        raise NotPlain(f"nested deeper than {MAX_DEPTH} levels")
    t = type(value)
    if value is None or t is bool:
        _spend(budget, 5)
        return value
    if t is str:
        _spend(budget, len(value) + 2)
        if not value.isascii():
            _spend(budget, len(value.encode("utf-8", "surrogatepass")) - len(value))
        return value
    if t is int:
        if value.bit_length() > _INT_DIGITS * 3:
            raise NotPlain("an integer too large to carry")
        _spend(budget, value.bit_length() // 3 + 2)
        return value
    if t is float:
        _spend(budget, 24)
        if math.isfinite(value):
            return value
        return {"f": "nan" if value != value else ("inf" if value > 0 else "-inf")}
    if t is list:
        _spend(budget, 2)
        return [encode(v, budget, depth + 1) for v in value]
    if t is tuple:
        _spend(budget, 8)
        return {"t": [encode(v, budget, depth + 1) for v in value]}
    if t is set or t is frozenset:
        _spend(budget, 10)
        return {"set" if t is set else "fs": [encode(v, budget, depth + 1) for v in value]}
    if t is dict:
        _spend(budget, 8)
        return {"d": [[encode(k, budget, depth + 1), encode(v, budget, depth + 1)] for k, v in value.items()]}
    raise NotPlain(_why_not(value))


def _spend(budget: list[int], n: int) -> None:
    budget[0] -= n + 1
    if budget[0] < 0:
        raise TooLarge("over the snapshot size cap")


def _why_not(value: Any) -> str:
    if callable(value) and type(value).__name__ in ("function", "builtin_function_or_method", "method"):
        return "a function (define it again, or ask a team admin for a helper)"
    if issubclass(type(value), type):  # never isinstance(): it would read a REPL object's __class__
        return "a class (define it again)"
    if _is_module(value):
        return "a module (import it again)"
    return "not plain data (only str, int, float, bool, None and lists, tuples, dicts, sets of them)"


def _is_module(value: Any) -> bool:
    """A sandbox module proxy (guards.ModuleProxy; named, not imported: the host has no guards)."""
    return any(c.__name__ == "ModuleProxy" for c in type(value).__mro__)


def type_name(value: Any) -> str:
    if _is_module(value):
        return "module"
    name = type(value).__name__
    return name if type(name) is str else "object"


def take(globals_: dict[str, Any], max_bytes: int, exclude: frozenset[str] | set[str] = frozenset()) -> dict[str, Any]:
    """The carried variables of a REPL and the list of those not carried, in globals order."""
    variables: dict[str, Any] = {}
    not_carried: list[dict[str, str]] = []
    budget = [max_bytes]
    for name, value in list(globals_.items()):
        if not carried_name(name) or name in exclude:
            continue
        spent = [budget[0]]
        try:
            variables[name] = encode(value, spent)
        except TooLarge:
            not_carried.append({"name": name, "type": type_name(value),
                                "reason": f"over the snapshot size cap ({max_bytes / 1024**2:g} MB)"})
            continue
        except NotPlain as exc:
            not_carried.append({"name": name, "type": type_name(value), "reason": str(exc)})
            continue
        except RecursionError:
            not_carried.append({"name": name, "type": type_name(value), "reason": "nested too deeply"})
            continue
        budget[0] = spent[0]
    return {"variables": variables, "not_carried": not_carried}


# ---------------------------------------------------------------------------------------------
# decoding (host: validation; committing cell process: restore)
# ---------------------------------------------------------------------------------------------
def decode(data: Any, depth: int = 0) -> Any:
    """The value an encoding stands for, built from exact built-in types only; SnapshotInvalid
    for anything the encoding does not produce."""
    if depth > MAX_DEPTH:
        raise SnapshotInvalid(f"nested deeper than {MAX_DEPTH} levels")
    t = type(data)
    if data is None or t in (bool, str, float):
        if t is float and not math.isfinite(data):
            raise SnapshotInvalid("a non-finite float outside its tag")
        return data
    if t is int:
        if data.bit_length() > _INT_DIGITS * 4:
            raise SnapshotInvalid("an integer too large")
        return data
    if t is list:
        return [decode(v, depth + 1) for v in data]
    if t is not dict or len(data) != 1:
        raise SnapshotInvalid(f"unexpected {t.__name__} in a snapshot")
    ((tag, inner),) = data.items()
    if tag not in _TAGS:
        raise SnapshotInvalid(f"unknown tag {str(tag)[:20]!r}")
    if tag == "f":
        if type(inner) is not str or inner not in _FLOATS:
            raise SnapshotInvalid("a bad float tag")
        return _FLOATS[inner]
    if type(inner) is not list:
        raise SnapshotInvalid(f"tag {tag!r} must hold a list")
    try:
        if tag == "t":
            return tuple(decode(v, depth + 1) for v in inner)
        if tag in ("set", "fs"):
            items = [decode(v, depth + 1) for v in inner]
            return set(items) if tag == "set" else frozenset(items)
        pairs = []
        for pair in inner:
            if type(pair) is not list or len(pair) != 2:
                raise SnapshotInvalid("a dict item must be a [key, value] pair")
            pairs.append((decode(pair[0], depth + 1), decode(pair[1], depth + 1)))
        return dict(pairs)
    except TypeError as exc:  # an unhashable set member or dict key
        raise SnapshotInvalid(f"unhashable key: {exc}") from None


def validate(data: Any, max_bytes: int) -> dict[str, Any]:
    """A snapshot's ``variables`` and ``not_carried`` as they may be stored or restored: names
    checked, every value decoded (and re-encoded as checked), total size within ``max_bytes``.
    A variable whose data is invalid is moved to ``not_carried``; a malformed whole raises."""
    if type(data) is not dict or type(data.get("variables")) is not dict:
        raise SnapshotInvalid("a snapshot is an object with a 'variables' object")
    raw_list = data.get("not_carried", [])
    if type(raw_list) is not list:
        raise SnapshotInvalid("'not_carried' must be a list")
    not_carried = []
    for item in raw_list[:10_000]:
        if type(item) is dict:
            not_carried.append({k: _short(item.get(k)) for k in ("name", "type", "reason")})
    variables: dict[str, Any] = {}
    types: dict[str, str] = {}
    size = 0
    for name, encoded in data["variables"].items():
        if not carried_name(name):
            not_carried.append({"name": _short(name), "type": "?", "reason": "not a name a snapshot may set"})
            continue
        try:
            value = decode(encoded)
            checked = encode(value, [max_bytes])
        except (SnapshotInvalid, NotPlain, RecursionError) as exc:
            not_carried.append({"name": name, "type": "?", "reason": f"invalid data: {exc}"})
            continue
        size += len(json.dumps(checked, ensure_ascii=False).encode("utf-8", "surrogatepass"))
        if size > max_bytes:
            not_carried.append({"name": name, "type": type_name(value),
                                "reason": f"over the snapshot size cap ({max_bytes / 1024**2:g} MB)"})
            continue
        variables[name], types[name] = checked, type_name(value)
    return {"variables": variables, "types": types, "not_carried": not_carried}


def _short(value: Any, limit: int = 300) -> str:
    text = value if type(value) is str else str(value) if value is not None else ""
    return text[:limit]


def restore_into(globals_: dict[str, Any], variables: Any) -> dict[str, Any]:
    """Put validated variables into a REPL's globals; returns what was restored and refused."""
    restored: list[str] = []
    rejected: list[dict[str, str]] = []
    if type(variables) is not dict:
        return {"restored": restored, "rejected": [{"name": "", "reason": "no variables object"}]}
    for name, encoded in variables.items():
        if not carried_name(name):
            rejected.append({"name": _short(name), "reason": "not a name a snapshot may set"})
            continue
        try:
            value = decode(encoded)
        except (SnapshotInvalid, RecursionError) as exc:
            rejected.append({"name": name, "reason": f"invalid data: {exc}"})
            continue
        globals_[name] = value
        restored.append(name)
    return {"restored": restored, "rejected": rejected}


# ---------------------------------------------------------------------------------------------
# files (host)
# ---------------------------------------------------------------------------------------------
def dumps(checked: dict[str, Any]) -> bytes:
    document = {"format": FORMAT, "version": VERSION, "variables": checked["variables"],
                "not_carried": checked["not_carried"]}
    return json.dumps(document, ensure_ascii=False, allow_nan=False).encode("utf-8", "surrogatepass")


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def loads(raw: bytes, max_bytes: int) -> dict[str, Any]:
    """A snapshot file's content, validated; SnapshotInvalid when it is not one."""
    if len(raw) > max_bytes + 1024**2:
        raise SnapshotInvalid(f"the snapshot file is {len(raw):,} bytes, over the cap")
    try:
        document = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise SnapshotInvalid(f"not a JSON snapshot ({type(exc).__name__})") from None
    if type(document) is not dict or document.get("format") != FORMAT or document.get("version") != VERSION:
        raise SnapshotInvalid("not an rlmweb snapshot of a known version")
    return validate(document, max_bytes)
