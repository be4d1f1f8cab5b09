"""Compiling a cell: RestrictedPython's transformer, plus four changes that keep every check.

1. ``obj.name`` with a literal name: RestrictedPython rejects ``_``-names and the inspect
   attributes (``gi_frame``, ``f_globals``, ...) at compile time, then wraps the access in
   ``_getattr_(obj, "name")``, which also vets what the access returns (``guards.vet``). A method
   call ``obj.name(...)`` whose name is not in ``guards.RUNTIME_CHECKED_ATTRIBUTES`` (``format``,
   ``format_map``, ``obj``) is compiled natively: the bound method never becomes a value the code
   holds, and the call keeps CPython's fast method-call path. Every other load (``f = obj.name``,
   ``obj.name.other``, ``obj.name[0]``) and every computed name (``getattr(x, name)``) goes
   through ``_getattr_`` at run time.
2. ``name += value`` compiles to the native in-place operation instead of ``_inplacevar_``. It can
   do nothing that ``name = name + value`` cannot, and binary operators are not guarded.
   ``d[k] += v`` and ``obj.n += v`` (compile errors in stock RestrictedPython) become
   ``_inplaceitem_``/``_inplaceattr_`` calls, which read and write through the same guards as
   ``d[k] = d[k] + v`` would. The object and the key are evaluated once, as in Python; the value
   is evaluated before the item is read (Python reads first), which only shows if evaluating the
   value changes that very item. Slices (``x[1:2] += y``) stay compile errors.
3. A bare expression as the last statement is shown (its ``repr``), as in a notebook.
4. Refusals of stock RestrictedPython that protect nothing here are lifted: annotations
   (``x: int = 1`` compiles as ``x = 1``, the annotation never evaluated), ``nonlocal`` (names
   still checked), and ordinary special methods in classes (``EXTRA_SPECIAL_METHODS``).

Source bombs: parsing, transforming and compiling happen in the (forked, resource-capped) cell
process, and RecursionError/MemoryError/ValueError become a readable compile error.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from types import CodeType
from typing import TYPE_CHECKING

from RestrictedPython.transformer import (
    INSPECT_ATTRIBUTES,
    IOPERATOR_TO_STR,
    RestrictingNodeTransformer,
    copy_locations,
)

from worker.sandbox.guards import RUNTIME_CHECKED_ATTRIBUTES

if TYPE_CHECKING:
    from RestrictedPython._types import T_pos_ast

_Visited = ast.AST | Iterable[ast.AST] | None  # what a NodeTransformer's visit_* may return

SYNTAX_ERROR_TEMPLATE = "Line {lineno}: {type}: {msg} at statement: {statement!r}"


# Special methods a class defined in the REPL may define, beyond RestrictedPython's own (__init__,
# __contains__ and the comparisons). Each is only ever called by the interpreter on the REPL's own
# objects, inside the REPL process, and hands out nothing the code did not already have; hooks
# into attribute lookup, class creation, pickling or finalisation (__getattr__, __init_subclass__,
# __reduce__, __del__...) stay refused.
EXTRA_SPECIAL_METHODS = frozenset({
    "__repr__", "__str__", "__len__", "__bool__", "__hash__", "__iter__", "__next__", "__getitem__",
    "__setitem__", "__delitem__", "__call__", "__add__", "__radd__", "__sub__", "__rsub__", "__mul__",
    "__rmul__", "__truediv__", "__rtruediv__", "__neg__", "__abs__",
})


class SandboxPolicy(RestrictingNodeTransformer):
    """RestrictedPython's policy with native fast paths where the runtime guard is a no-op, and a
    few refusals of stock RestrictedPython lifted where they protect nothing."""

    def check_name(self, node: T_pos_ast, name: str | None, allow_magic_methods: bool = False) -> None:
        if allow_magic_methods and name in EXTRA_SPECIAL_METHODS and node.col_offset != 0:
            return  # a method in a class body (col_offset 0 would be a module-level function)
        super().check_name(node, name, allow_magic_methods)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> _Visited:
        # `x: int = 1` is `x = 1`; the annotation is dropped, never evaluated. `x: int` alone binds
        # nothing in Python either.
        if node.value is None:
            if isinstance(node.target, ast.Name):
                self.check_name(node, node.target.id)
            placeholder = ast.Pass()
            copy_locations(placeholder, node)
            return placeholder
        assign = ast.Assign(targets=[node.target], value=node.value)
        copy_locations(assign, node)
        visited: _Visited = self.visit(assign)
        return visited

    def visit_Nonlocal(self, node: ast.Nonlocal) -> _Visited:
        # Rebinds a variable of an enclosing function of the same cell; reaches nothing new.
        for name in node.names:
            self.check_name(node, name)
        return node

    def visit_Call(self, node: ast.Call) -> _Visited:
        if isinstance(node.func, ast.Attribute) and isinstance(node.func.ctx, ast.Load):
            node.func.rlmweb_method_call = True  # type: ignore[attr-defined]
        return super().visit_Call(node)

    def visit_Attribute(self, node: ast.Attribute) -> _Visited:
        new = super().visit_Attribute(node)
        if (
            getattr(node, "rlmweb_method_call", False)
            and isinstance(new, ast.Call)
            and isinstance(new.func, ast.Name)
            and new.func.id == "_getattr_"
            and len(new.args) == 2
            and isinstance(new.args[1], ast.Constant)
            and isinstance(new.args[1].value, str)
            and new.args[1].value not in RUNTIME_CHECKED_ATTRIBUTES
        ):
            native = ast.Attribute(value=new.args[0], attr=new.args[1].value, ctx=ast.Load())
            copy_locations(native, node)
            return native
        return new

    def visit_Subscript(self, node: ast.Subscript) -> _Visited:
        # `x[a:b]` calls _getslice_ (which records slices of `context`), keeping _getitem_'s
        # fast path for `x[i]` free of that check.
        new = super().visit_Subscript(node)
        if (
            isinstance(node.slice, ast.Slice)
            and isinstance(new, ast.Call)
            and isinstance(new.func, ast.Name)
            and new.func.id == "_getitem_"
        ):
            new.func = ast.Name("_getslice_", ast.Load())
            copy_locations(new.func, node)
        return new

    def visit_AugAssign(self, node: ast.AugAssign) -> _Visited:
        target = node.target
        if isinstance(target, ast.Name):
            # Visiting checks the target name (no "_" names, no reserved names) and the value.
            return self.node_contents_visit(node)
        op = ast.Constant(IOPERATOR_TO_STR[type(node.op)])
        if isinstance(target, ast.Subscript) and not _has_slice(target.slice):
            # d[k] += v  ->  _inplaceitem_(d, k, "+=", v)
            args = [self.visit(target.value), self.visit(target.slice), op, self.visit(node.value)]
            return _call_statement("_inplaceitem_", args, node)
        if isinstance(target, ast.Attribute) and not _is_refused_attribute(target.attr):
            # obj.n += v  ->  _inplaceattr_(obj, "n", "+=", v)
            args = [self.visit(target.value), ast.Constant(target.attr), op, self.visit(node.value)]
            return _call_statement("_inplaceattr_", args, node)
        return super().visit_AugAssign(node)  # slices and "_" names: RestrictedPython's errors


def _has_slice(node: ast.expr) -> bool:
    return isinstance(node, ast.Slice) or (
        isinstance(node, ast.Tuple) and any(isinstance(e, ast.Slice) for e in node.elts)
    )


def _is_refused_attribute(name: str) -> bool:
    return name.startswith("_") or name in INSPECT_ATTRIBUTES


def _call_statement(function: str, args: list[ast.expr], like: ast.stmt) -> ast.Expr:
    """``function(*args)`` as a statement, placed where ``like`` was."""
    statement = ast.Expr(ast.Call(func=ast.Name(function, ast.Load()), args=args, keywords=[]))
    copy_locations(statement, like)
    return ast.fix_missing_locations(statement)


def _show_last_expression(tree: ast.Module) -> None:
    if not tree.body or not isinstance(tree.body[-1], ast.Expr):
        return
    last = tree.body[-1]
    call = ast.Call(func=ast.Name("_display_", ast.Load()), args=[last.value], keywords=[])
    copy_locations(call, last.value)
    last.value = call


def compile_cell(source: str, filename: str) -> tuple[CodeType | None, str | None]:
    """Compile restricted source. Returns (code, None) or (None, readable error)."""
    try:
        tree = ast.parse(source, filename, "exec")
    except SyntaxError as exc:
        return None, SYNTAX_ERROR_TEMPLATE.format(
            lineno=exc.lineno,
            type=type(exc).__name__,
            msg=exc.msg,
            statement=exc.text.strip() if exc.text else None,
        )
    except (RecursionError, MemoryError) as exc:
        return None, f"The cell could not be parsed ({type(exc).__name__}): it is too large or too deeply nested."
    except ValueError as exc:  # e.g. null bytes in the source
        return None, f"SyntaxError: {exc}"
    errors: list[str] = []
    try:
        SandboxPolicy(errors, [], {}).visit(tree)
    except (RecursionError, MemoryError) as exc:
        return None, f"The cell could not be compiled ({type(exc).__name__}): it is too large or too deeply nested."
    if errors:
        return None, "\n".join(errors)
    _show_last_expression(tree)
    try:
        return compile(tree, filename, "exec"), None
    except SyntaxError as exc:
        return None, f"Line {exc.lineno}: SyntaxError: {exc.msg}"
    except (RecursionError, MemoryError, ValueError) as exc:
        return None, f"The cell could not be compiled ({type(exc).__name__}): it is too large or too deeply nested."
