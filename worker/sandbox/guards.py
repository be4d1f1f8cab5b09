"""The guards RestrictedPython's compiled code calls, the curated builtins, and module proxies.

Runs inside the REPL process only. The language layer must hold on its own (the OS layers are
defence in depth), so the design is an allowlist decided on exact types:

* Names starting with ``_`` and the inspect attributes (frames, tracebacks, code, generator and
  coroutine internals) can never be reached: RestrictedPython rejects them at compile time when
  written literally, and ``_getattr_`` (also behind ``getattr``/``hasattr``) rejects them at run time.
* **What an access returns is checked by what it is** (``vet``), whatever the receiver was:
  modules, frames, code, tracebacks, cells, namespace dicts, interpreter-internal types (``type``,
  ``super``, ``GenericAlias``, method and function types...) and the sandbox's own classes are
  refused; every native ``str.format``/``format_map`` (bound, unbound, reached through a str
  subclass, ``UserString``, a class attribute or a ``GenericAlias``) becomes the guarded formatter,
  which does every ``.name`` and ``[key]`` step of a field through ``_getattr_``/``_getitem_``.
  policy.py routes every attribute load but plain method calls through ``_getattr_``.
* No forwarders, no constructors of internal types: ``super`` is not a builtin; ``type(x)`` of an
  internal object is a ``TypeView`` (prints like the class, cannot be called or subclassed).
* ``AttributeError.obj`` (the object a failed lookup was made on) is refused on everything but
  the REPL's own non-exception classes.
* The REPL never gets a real module or anything that looks attributes up by a name the code
  chooses (``operator.attrgetter``/``methodcaller``, ``string.Formatter``,
  ``functools.update_wrapper``'s lists, ``functools.singledispatch``). Allowed modules are proxies
  holding hand-picked names. ``tests/sandbox/test_language_layer.py`` audits the reachable graph.
* ``_getitem_`` has a fast path for plain containers (they hold only what REPL code or vetted
  accesses put in them); other objects' items are vetted, and ``_``-keys of namespace views refused.
* Writes (``x.a = 1``, ``x[k] = v``, ``setattr``) are allowed on exact container types and on
  classes defined in the REPL and their instances; everything else is read-only (never decided by
  ``isinstance``: an ABC's public ``register()`` would widen it).
"""

from __future__ import annotations

import _string
import builtins
import collections
import csv
import datetime
import difflib
import functools
import heapq
import itertools
import json
import math
import operator
import random
import re
import statistics
import string
import sys
import textwrap
import types
import unicodedata
import weakref
from collections.abc import Callable
from typing import Any

from RestrictedPython.transformer import INSPECT_ATTRIBUTES


# ----------------------------------------------------------------------------------------------
# What an access may return
# ----------------------------------------------------------------------------------------------
class SandboxRefusal(AttributeError):
    """An access whose result the REPL may not have (an AttributeError, so getattr defaults work)."""


class TypeView:
    """What ``type(x)`` gives for an interpreter-internal type: it prints and compares like the
    class, but it cannot be called, subclassed, or used to reach the class itself."""

    __slots__ = ("_cls",)
    _cls: type

    def __init__(self, cls: type) -> None:
        object.__setattr__(self, "_cls", cls)

    def __repr__(self) -> str:
        return f"<class {self._cls.__name__!r} (not available in the sandbox)>"

    def __eq__(self, other: object) -> bool:
        return type(other) is TypeView and other._cls is self._cls

    def __hash__(self) -> int:
        return hash(self._cls)

    def __setattr__(self, name: str, value: object) -> None:
        raise TypeError("TypeView objects are read-only")


class _BoundFormat:
    """``template.format``/``format_map`` as the REPL gets them: the guarded formatter, bound."""

    __slots__ = ("_method", "_template")

    def __init__(self, method: Callable[..., str], template: object) -> None:
        self._method = method
        self._template = template

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        return self._method(self._template, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<guarded method {self._method.__name__.removeprefix('guarded_')} of str>"


# Types whose constructors (or whose instances) reach interpreter internals: they are never handed
# to REPL code, whatever path leads to them. Nothing a REPL user needs requires them.
INTERNAL_TYPES: frozenset[type] = frozenset({
    type, super, types.GenericAlias, types.UnionType, types.MethodType, types.FunctionType,
    types.BuiltinFunctionType, types.MethodDescriptorType, types.WrapperDescriptorType,
    types.MethodWrapperType, types.ClassMethodDescriptorType, types.GetSetDescriptorType,
    types.MemberDescriptorType, types.CodeType, types.CellType, types.FrameType, types.TracebackType,
    types.ModuleType, types.MappingProxyType, types.SimpleNamespace, types.GeneratorType,
    types.CoroutineType, types.AsyncGeneratorType, weakref.ref, weakref.ProxyType, weakref.CallableProxyType,
})
# Instances never handed out (REPL code may hold generators it wrote, but not these).
_FORBIDDEN_INSTANCES: tuple[type, ...] = (
    types.ModuleType, types.FrameType, types.CodeType, types.TracebackType, types.CellType,
    types.CoroutineType, types.AsyncGeneratorType, super, types.SimpleNamespace,
)
# Values that are what they look like and reach nothing: returned without further checks.
_INERT: frozenset[type] = frozenset({
    int, float, complex, bool, str, bytes, bytearray, type(None), list, tuple, set, frozenset, range,
    slice, re.Pattern, re.Match, datetime.date, datetime.datetime, datetime.timedelta, datetime.time,
})
_BUILTINS_DICT = builtins.__dict__
_INTERNAL_BASES = tuple(INTERNAL_TYPES)


def is_internal_type(cls: type) -> bool:
    """An interpreter-internal type, or a subclass of one (e.g. ``builtin_method``, the class of
    C methods that know their defining class, subclasses ``builtin_function_or_method``)."""
    return cls in INTERNAL_TYPES or issubclass(cls, _INTERNAL_BASES) or _is_machinery(cls)


def _is_machinery(cls: type) -> bool:
    """Classes of the sandbox itself (its proxies, guards and REPL objects)."""
    module = cls.__dict__.get("__module__") if type(cls.__dict__) is types.MappingProxyType else None
    return type(module) is str and module.startswith("worker.") and cls is not SandboxRefusal


def vet(value: Any) -> Any:
    """Check what an access returns, by what it is, whatever it was read from.

    Refuses modules, frames, code, tracebacks, cells, namespace dicts (a function's globals, the
    builtins), internal types and the sandbox's own machinery; turns every native ``str.format``
    / ``format_map`` (bound, unbound, through ``UserString``, a subclass, ``super`` or a
    ``GenericAlias``) into the guarded formatter. Everything else is returned as it is.
    """
    t = type(value)
    if t in _INERT:
        return value
    if isinstance(value, types.BuiltinFunctionType):  # builtin functions and bound C methods
        name = value.__name__
        if (name == "format" or name == "format_map") and isinstance(value.__self__, str):
            return _BoundFormat(_GUARDED_FORMAT[name], value.__self__)
        return value
    if t is types.MethodDescriptorType or t is types.FunctionType:
        guarded = _NATIVE_FORMATS.get(value)
        return value if guarded is None else guarded
    if t is types.MethodType:
        guarded = _NATIVE_FORMATS.get(value.__func__)
        return value if guarded is None else _BoundFormat(guarded, value.__self__)
    if t is dict:
        if value is _BUILTINS_DICT or "__builtins__" in value:
            raise SandboxRefusal("a module's namespace is not available in the sandbox")
        return value
    if isinstance(value, type):
        if is_internal_type(value):
            raise SandboxRefusal(f"the {value.__name__!r} type is not available in the sandbox")
        return value
    if isinstance(value, _FORBIDDEN_INSTANCES):
        raise SandboxRefusal(f"{t.__name__!r} objects are not available in the sandbox")
    if _is_machinery(t) and not isinstance(value, (ModuleProxy, _BoundFormat, TypeView)):
        raise SandboxRefusal(f"{t.__name__!r} objects are not available in the sandbox")
    return value


# ----------------------------------------------------------------------------------------------
# _getattr_
# ----------------------------------------------------------------------------------------------
def _obj_refused(ob: object) -> bool:
    # AttributeError.obj (and any `obj` a library object carries) hands out what a failed lookup
    # was made on. Only the REPL's own classes (not exceptions) may have an `obj` attribute.
    t = type(ob)
    return t not in USER_CLASSES or BaseException in t.__mro__


# name -> (predicate on the object, message): refused by _getattr_ where the predicate holds.
ATTRIBUTE_RULES: dict[str, tuple[Callable[[object], bool], str]] = {
    "obj": (_obj_refused, "the 'obj' attribute of exceptions and library objects is not available in the sandbox"),
}


class _GuardedFormatter(string.Formatter):
    """``str.format`` semantics with each attribute and item step of a field guarded."""

    def get_value(self, key: int | str, args: Any, kwargs: Any) -> Any:
        # format_map's mapping is the caller's: its keys go through _getitem_ like any other item.
        return guarded_getitem(args if type(key) is int else kwargs, key)

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> tuple[Any, Any]:
        first, rest = _string.formatter_field_name_split(field_name)
        obj = self.get_value(first, args, kwargs)
        for is_attribute, key in rest:
            obj = guarded_getattr(obj, key) if is_attribute else guarded_getitem(obj, key)
        return obj, first


_FORMATTER = _GuardedFormatter()


def exact_str(value: object) -> str:
    """An exact ``str`` with the same characters as a str (or str subclass) value; never calls
    methods a subclass may override."""
    if type(value) is str:
        return value
    if isinstance(value, str):
        return str.__str__(value)  # a copy as an exact str
    raise TypeError(f"expected a str, got {type(value).__name__}")


def _template_text(template: object) -> str:
    if type(template) is not str and isinstance(template, collections.UserString):
        template = template.data
    if not isinstance(template, str):
        raise TypeError(f"format() needs a str template, not {type(template).__name__}")
    return exact_str(template)


def guarded_format(template: object, /, *args: Any, **kwargs: Any) -> str:
    """``template.format(*args, **kwargs)`` (also ``str.format(template, ...)``)."""
    return _FORMATTER.vformat(_template_text(template), args, kwargs)


def guarded_format_map(template: object, mapping: Any, /) -> str:
    """``template.format_map(mapping)``."""
    return _FORMATTER.vformat(_template_text(template), (), mapping)


_GUARDED_FORMAT: dict[str, Callable[..., str]] = {"format": guarded_format, "format_map": guarded_format_map}
# Every native formatting entry point a REPL value can lead to, and its guarded replacement.
_NATIVE_FORMATS: dict[object, Callable[..., str]] = {
    str.__dict__["format"]: guarded_format,
    str.__dict__["format_map"]: guarded_format_map,
    collections.UserString.format: guarded_format,
    collections.UserString.format_map: guarded_format_map,
}

# The attribute names _getattr_ checks on every call site, even where policy.py compiles a
# method call natively (``x.name(...)``); every other access goes through _getattr_ and vet().
RUNTIME_CHECKED_ATTRIBUTES = frozenset(ATTRIBUTE_RULES) | frozenset(_GUARDED_FORMAT)


_ATTR_OK: set[tuple[object, str]] = set()
_ATTR_CACHE_MAX = 100_000
_RAISE = object()


def _check_attribute(ob: object, name: str) -> None:
    if name.startswith("_"):
        raise AttributeError(f'"{name}" is an invalid attribute name because it starts with "_"')
    if name in INSPECT_ATTRIBUTES:
        raise AttributeError(f'"{name}" is a restricted name, forbidden in the sandbox')
    rule = ATTRIBUTE_RULES.get(name)
    if rule is not None and rule[0](ob):
        raise AttributeError(rule[1])


def guarded_getattr(ob: object, name: str, default: object = _RAISE) -> Any:
    """``_getattr_``: RestrictedPython's ``safer_getattr_raise`` semantics, then ``vet`` on the
    result. The name check is cached per (type, name); rules are decided on exact types."""
    if type(name) is not str:
        raise TypeError("attribute name must be a str")
    if name in ATTRIBUTE_RULES:
        _check_attribute(ob, name)
    else:
        key = (ob if type(ob) is type else type(ob), name)
        if key not in _ATTR_OK:
            _check_attribute(ob, name)
            if len(_ATTR_OK) >= _ATTR_CACHE_MAX:
                _ATTR_OK.clear()
            _ATTR_OK.add(key)
    if default is _RAISE:
        return vet(getattr(ob, name))
    value = getattr(ob, name, _RAISE)
    return default if value is _RAISE else vet(value)


def guarded_hasattr(ob: object, name: str) -> bool:
    try:
        guarded_getattr(ob, name)
    except AttributeError:
        return False
    return True


# ----------------------------------------------------------------------------------------------
# _getitem_, _getiter_, unpacking, _apply_, _inplacevar_
# ----------------------------------------------------------------------------------------------
_PLAIN_CONTAINERS = frozenset({list, tuple, str, dict, bytes, bytearray, range})


def guarded_getitem(ob: Any, index: Any, _plain: frozenset[type] = _PLAIN_CONTAINERS, type: type = type) -> Any:  # noqa: A002
    # (defaults bind the frozenset and `type` as fast locals: this runs once per `x[i]`)
    if type(ob) in _plain:
        # Plain containers hold only what REPL code (or vetted accesses) put in them.
        return ob[index]
    if type(ob) is types.MappingProxyType and type(index) is str and index.startswith("_"):
        # Read-only namespace views (e.g. Pattern.groupindex) are fine; a class namespace's
        # private entries are not, should one ever become reachable.
        raise KeyError(f"{index!r}: keys starting with '_' are not available in the sandbox")
    return vet(ob[index])


def guarded_iter(ob: Any) -> Any:
    return iter(ob)


def guarded_unpack_sequence(it: Any, spec: object, _getiter_: object) -> Any:
    # `a, (b, c) = x`: the assignment target unpacks natively; with iteration unrestricted that is
    # exactly what RestrictedPython's list(_getiter_(...)) per level would do, minus the copies.
    return it


def guarded_iter_unpack_sequence(it: Any, spec: object, _getiter_: Callable[[Any], Any]) -> Any:
    # `for a, b in x`: one guarded iterator for the loop; the target unpacks natively.
    return _getiter_(it)


def guarded_apply(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return func(*args, **kwargs)


_INPLACE_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "+=": operator.iadd,
    "-=": operator.isub,
    "*=": operator.imul,
    "/=": operator.itruediv,
    "//=": operator.ifloordiv,
    "%=": operator.imod,
    "**=": operator.ipow,
    "<<=": operator.ilshift,
    ">>=": operator.irshift,
    "|=": operator.ior,
    "^=": operator.ixor,
    "&=": operator.iand,
    "@=": operator.imatmul,
}


def guarded_inplacevar(op: str, x: Any, y: Any) -> Any:
    """``_inplacevar_`` (kept for completeness: policy.py compiles ``name op= v`` natively)."""
    try:
        fn = _INPLACE_OPS[op]
    except KeyError:
        raise SyntaxError(f"unsupported in-place operator {op!r}") from None
    return fn(x, y)


def guarded_inplaceitem(ob: Any, key: Any, op: str, value: Any) -> None:
    """``ob[key] op= value`` (policy.py compiles it to this): the same guards as ``ob[key] = ob[key] op value``."""
    guarded_write(ob)[key] = guarded_inplacevar(op, guarded_getitem(ob, key), value)


def guarded_inplaceattr(ob: Any, name: str, op: str, value: Any) -> None:
    """``ob.name op= value`` (policy.py compiles it to this): read and write through the guards."""
    guarded_setattr(ob, name, guarded_inplacevar(op, guarded_getattr(ob, name), value))


# ----------------------------------------------------------------------------------------------
# _write_ and classes defined in the REPL
# ----------------------------------------------------------------------------------------------
USER_CLASSES: set[type] = set()
# Exact types (never isinstance: an ABC's public register() would make anything an "instance").
_WRITABLE_TYPES = frozenset({
    dict,
    list,
    bytearray,
    set,
    collections.deque,
    collections.OrderedDict,
    collections.defaultdict,
    collections.Counter,
    collections.UserDict,
    collections.UserList,
    collections.ChainMap,
})


class _ReadOnly:
    """What ``_write_`` returns for objects the REPL may not modify: every write raises."""

    __slots__ = ("_what",)
    _what: str

    def __init__(self, what: str) -> None:
        object.__setattr__(self, "_what", what)

    def _refuse(self, *args: object) -> None:
        raise TypeError(
            f"cannot modify {self._what} objects in the sandbox (you can modify your own variables, "
            "lists, dicts, sets, and classes defined in the REPL and their instances)"
        )

    __setattr__ = _refuse
    __delattr__ = _refuse
    __setitem__ = _refuse
    __delitem__ = _refuse


def guarded_write(ob: Any) -> Any:
    t = type(ob)
    if t in _WRITABLE_TYPES or t in USER_CLASSES:
        return ob
    if isinstance(ob, type) and ob in USER_CLASSES:  # (REPL code cannot define metaclasses)
        return ob
    return _ReadOnly(t.__name__ if not isinstance(ob, type) else f"class {ob.__name__}")


def guarded_setattr(ob: Any, name: str, value: Any) -> None:
    if type(name) is not str:
        raise TypeError("attribute name must be a str")
    _check_attribute(ob, name)
    setattr(guarded_write(ob), name, value)


def guarded_delattr(ob: Any, name: str) -> None:
    if type(name) is not str:
        raise TypeError("attribute name must be a str")
    _check_attribute(ob, name)
    delattr(guarded_write(ob), name)


def make_class(name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwargs: Any) -> type:
    """``__metaclass__`` for every class statement: build the class and remember it as the REPL's."""
    if kwargs:
        raise TypeError("class keyword arguments are not available in the sandbox")
    for base in bases:
        if not isinstance(base, type) or is_internal_type(base):
            raise TypeError(f"cannot subclass {base!r} in the sandbox")
    cls = type(name, bases, namespace)
    USER_CLASSES.add(cls)
    return cls


# ----------------------------------------------------------------------------------------------
# Module proxies
# ----------------------------------------------------------------------------------------------
class ModuleProxy:
    """Base of the per-module proxy classes: chosen names as class attributes, nothing else.

    No ``__name__`` on purpose: ``from X import y`` falls back to ``sys.modules["X.y"]`` when the
    attribute is missing and the object has a ``__name__``; without one it just fails.
    """

    __slots__ = ()
    _sandbox_name = "?"

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(
            f"module {self._sandbox_name!r} has no attribute {name!r} in the sandbox "
            f"(available: {', '.join(sorted(n for n in dir(type(self)) if not n.startswith('_')))})"
        )

    def __repr__(self) -> str:
        return f"<module {self._sandbox_name!r} (sandbox proxy)>"


def _wraps(wrapped: Callable[..., Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """functools.wraps with the default attribute lists only, applied to REPL functions only."""

    def decorate(wrapper: Callable[..., Any]) -> Callable[..., Any]:
        if type(wrapper) is not types.FunctionType:
            raise TypeError("functools.wraps() can only decorate a function defined in the REPL")
        return functools.update_wrapper(wrapper, wrapped)

    return decorate


_RE_FLAGS = ("A", "ASCII", "I", "IGNORECASE", "M", "MULTILINE", "S", "DOTALL", "X", "VERBOSE", "U", "UNICODE")

MODULE_NAMES: dict[str, tuple[types.ModuleType, tuple[str, ...]]] = {
    "re": (
        re,
        (
            "compile", "search", "match", "fullmatch", "split", "findall", "finditer", "sub", "subn",
            "escape", "purge", "error", "Pattern", "Match", *_RE_FLAGS,
        ),
    ),
    "json": (json, ("loads", "dumps", "JSONDecodeError", "JSONDecoder", "JSONEncoder")),
    "math": (math, tuple(n for n in dir(math) if not n.startswith("_"))),
    "statistics": (
        statistics,
        (
            "mean", "fmean", "geometric_mean", "harmonic_mean", "median", "median_low", "median_high",
            "median_grouped", "mode", "multimode", "quantiles", "pstdev", "pvariance", "stdev",
            "variance", "covariance", "correlation", "linear_regression", "NormalDist",
            "StatisticsError",
        ),
    ),
    "collections": (
        collections,
        ("Counter", "defaultdict", "OrderedDict", "deque", "namedtuple", "ChainMap", "UserDict",
         "UserList", "UserString"),
    ),
    "itertools": (itertools, tuple(n for n in dir(itertools) if not n.startswith("_"))),
    "functools": (
        functools,
        ("reduce", "partial", "lru_cache", "cache", "cmp_to_key", "cached_property", "total_ordering",
         "wraps"),
    ),
    "heapq": (
        heapq,
        ("heappush", "heappop", "heapify", "heapreplace", "heappushpop", "nlargest", "nsmallest", "merge"),
    ),
    "bisect": (
        __import__("bisect"),
        ("bisect", "bisect_left", "bisect_right", "insort", "insort_left", "insort_right"),
    ),
    "string": (
        string,
        ("ascii_letters", "ascii_lowercase", "ascii_uppercase", "digits", "hexdigits", "octdigits",
         "punctuation", "printable", "whitespace", "capwords", "Template"),
    ),
    "textwrap": (textwrap, ("wrap", "fill", "shorten", "dedent", "indent", "TextWrapper")),
    "difflib": (
        difflib,
        ("SequenceMatcher", "Differ", "HtmlDiff", "get_close_matches", "unified_diff", "context_diff",
         "ndiff", "restore", "IS_LINE_JUNK", "IS_CHARACTER_JUNK"),
    ),
    "datetime": (
        datetime,
        ("date", "time", "datetime", "timedelta", "timezone", "tzinfo", "MINYEAR", "MAXYEAR", "UTC"),
    ),
    "random": (
        random,
        ("random", "randint", "randrange", "choice", "choices", "sample", "shuffle", "uniform", "gauss",
         "normalvariate", "lognormvariate", "expovariate", "vonmisesvariate", "gammavariate",
         "betavariate", "paretovariate", "weibullvariate", "triangular", "seed", "getrandbits",
         "randbytes", "getstate", "setstate", "Random"),
    ),
    "operator": (
        operator,
        tuple(
            n for n in dir(operator)
            if not n.startswith("_") and n not in ("attrgetter", "methodcaller")
        ),
    ),
    "unicodedata": (
        unicodedata,
        ("lookup", "name", "decimal", "digit", "numeric", "category", "bidirectional", "combining",
         "east_asian_width", "mirrored", "decomposition", "normalize", "is_normalized", "unidata_version"),
    ),
    "csv": (
        csv,
        ("reader", "writer", "DictReader", "DictWriter", "Sniffer", "Dialect", "excel", "excel_tab",
         "unix_dialect", "QUOTE_ALL", "QUOTE_MINIMAL", "QUOTE_NONE", "QUOTE_NONNUMERIC", "Error",
         "register_dialect", "unregister_dialect", "get_dialect", "list_dialects", "field_size_limit"),
    ),
}

_OVERRIDES: dict[tuple[str, str], object] = {("functools", "wraps"): _wraps}
for _flag in _RE_FLAGS:  # plain ints: no enum objects (their classes reach the enum module)
    _OVERRIDES[("re", _flag)] = int(getattr(re, _flag))


def _make_proxy(name: str, module: types.ModuleType, names: tuple[str, ...]) -> ModuleProxy:
    attrs: dict[str, Any] = {"__slots__": (), "_sandbox_name": name}
    for attr in names:
        value = _OVERRIDES.get((name, attr), _RAISE)
        if value is _RAISE:
            value = getattr(module, attr)
        if isinstance(value, types.ModuleType):
            raise RuntimeError(f"refusing to expose module {attr!r} through proxy {name!r}")
        if callable(value) and not isinstance(value, type):
            value = staticmethod(value)  # Python functions are descriptors: do not bind to the proxy
        attrs[attr] = value
    cls = type(f"{name}_proxy", (ModuleProxy,), attrs)
    proxy: ModuleProxy = cls()
    return proxy


PROXIES: dict[str, ModuleProxy] = {
    name: _make_proxy(name, module, names) for name, (module, names) in MODULE_NAMES.items()
}
ALLOWED_MODULES: tuple[str, ...] = tuple(sorted(PROXIES))


def guarded_import(
    name: str,
    globals: object = None,
    locals: object = None,
    fromlist: tuple[str, ...] | list[str] | None = (),
    level: int = 0,
) -> ModuleProxy | types.ModuleType:
    if level == 0 and type(fromlist) is list and fromlist in ([], ["__doc__"]) and name in sys.modules:
        # PyImport_Import (C code such as datetime.strftime importing `time`, or _json importing
        # json.decoder) calls the __import__ of the running frame's builtins with a *list* as
        # fromlist ([] on 3.11, ["__doc__"] before), then takes the module from sys.modules itself:
        # the REPL never sees it. Compiled import statements pass None or a tuple, and restricted
        # code cannot reach __import__ to call it directly.
        return sys.modules[name]
    if level != 0:
        raise ImportError("relative imports are not available in the sandbox")
    proxy = PROXIES.get(name) if type(name) is str else None
    if proxy is None:
        raise ImportError(
            f"import of {name!r} is not allowed in the sandbox; allowed modules: {', '.join(ALLOWED_MODULES)}"
        )
    allowed = MODULE_NAMES[name][1]
    for item in fromlist or ():
        if item not in allowed:
            raise ImportError(
                f"cannot import name {item!r} from {name!r} in the sandbox (available: {', '.join(allowed)})"
            )
    return proxy


# ----------------------------------------------------------------------------------------------
# Builtins
# ----------------------------------------------------------------------------------------------
def safe_type(*args: Any) -> type | TypeView:
    """``type(x)``: the class of REPL values and library objects; for interpreter-internal types
    (methods, functions, modules, ``type`` itself...) a printable TypeView, never the constructor."""
    if len(args) != 1:
        raise TypeError("type() with 3 arguments (building a class) is not available; use a class statement")
    t = type(args[0])
    if is_internal_type(t):
        view = _TYPE_VIEWS.get(t)
        if view is None:
            view = _TYPE_VIEWS[t] = TypeView(t)
        return view
    return t


_TYPE_VIEWS: dict[type, TypeView] = {}


def _unavailable(name: str, hint: str) -> Callable[..., Any]:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(f"{name}() is not available in the sandbox: {hint}")

    refuse.__name__ = name
    return refuse


_PLAIN_BUILTINS = (
    "abs", "all", "any", "ascii", "bin", "bool", "bytearray", "bytes", "callable", "chr", "classmethod",
    "complex", "dict", "divmod", "enumerate", "filter", "float", "format", "frozenset", "hash", "hex",
    "id", "int", "isinstance", "issubclass", "iter", "len", "list", "map", "max", "min", "next",
    "object", "oct", "ord", "pow", "property", "range", "repr", "reversed", "round", "set", "slice",
    "sorted", "staticmethod", "str", "sum", "tuple", "zip",
    "None", "False", "True", "Ellipsis", "NotImplemented",
)
_EXCEPTIONS = tuple(
    n for n in dir(builtins)
    if isinstance(getattr(builtins, n), type)
    and issubclass(getattr(builtins, n), BaseException)
    and "Group" not in n
)


def base_builtins() -> dict[str, Any]:
    """Builtins without the per-REPL entries (print collector, FINAL, dir, the query functions)."""
    b: dict[str, Any] = {name: getattr(builtins, name) for name in _PLAIN_BUILTINS + _EXCEPTIONS}
    b.update(
        type=safe_type,
        getattr=guarded_getattr,
        hasattr=guarded_hasattr,
        setattr=guarded_setattr,
        delattr=guarded_delattr,
        __import__=guarded_import,
        __build_class__=builtins.__build_class__,
        __metaclass__=make_class,
        _getattr_=guarded_getattr,
        _getitem_=guarded_getitem,
        _getslice_=guarded_getitem,  # the REPL replaces it with one that records context slices
        _getiter_=guarded_iter,
        _write_=guarded_write,
        _inplacevar_=guarded_inplacevar,
        _inplaceitem_=guarded_inplaceitem,
        _inplaceattr_=guarded_inplaceattr,
        _unpack_sequence_=guarded_unpack_sequence,
        _iter_unpack_sequence_=guarded_iter_unpack_sequence,
        _apply_=guarded_apply,
    )
    no_fs = "there is no file system here; the documents are already loaded in `context`"
    for name, hint in (
        ("open", no_fs),
        ("input", "there is no interactive input"),
        ("globals", "use SHOW_VARS() to list your variables"),
        ("locals", "use SHOW_VARS() to list your variables"),
        ("vars", "use SHOW_VARS() to list your variables"),
        ("compile", "write the code in the cell itself"),
        ("breakpoint", "there is no debugger"),
        ("help", "there is no interactive help"),
        ("exit", "finish with FINAL(answer) or FINAL_VAR(name)"),
        ("quit", "finish with FINAL(answer) or FINAL_VAR(name)"),
        ("memoryview", "use bytes or bytearray"),
        ("super", "call the base class's method directly, e.g. Base.method(self, ...)"),
    ):
        b[name] = _unavailable(name, hint)
    return b
