"""Derived targets declared in a config: a tiny expression language over a table's columns.

An expression is parsed with :func:`ast.parse` and only these nodes are accepted; anything else
(a call, an attribute, a subscript, a lambda) is refused in one line. Nothing is evaluated by
Python: each node maps to a vectorised ``pyarrow.compute`` kernel over whole columns.

* names: columns (identifiers); constants: numbers, strings, ``True``/``False``;
* arithmetic ``+ - * /`` and unary ``-`` (booleans count as 0/1);
* comparisons ``== != < <= > >=`` (chained too), ``in`` / ``not in`` a list of constants;
* ``and``, ``or``, ``not`` (Kleene logic: a null stays unknown).

A null in an input gives a null result, which a target reads as an undefined label (masked).
Examples: ``click * purchase`` (CTCVR), ``income == '50000+.'``,
``education in ['Bachelors degree(BA AB BS)', 'Masters degree(MA MS MEng MEd MSW MBA)']``.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

Column = Any  # a pyarrow ChunkedArray, Array or Scalar (pyarrow has no type information)

_ARITHMETIC: dict[type, str] = {ast.Add: "add", ast.Sub: "subtract", ast.Mult: "multiply", ast.Div: "divide"}
_COMPARE: dict[type, str] = {
    ast.Eq: "equal",
    ast.NotEq: "not_equal",
    ast.Lt: "less",
    ast.LtE: "less_equal",
    ast.Gt: "greater",
    ast.GtE: "greater_equal",
}


class ExpressionError(ValueError):
    """An expression outside the language, in one line."""


def parse(text: str) -> ast.expr:
    """The checked syntax tree of ``text``; a one-line :class:`ExpressionError` otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError(f"expected an expression over columns, got {text!r}")
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as error:
        raise ExpressionError(f"{text!r}: not an expression ({error.msg})") from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise ExpressionError(
                f"{text!r}: {type(node).__name__} is not allowed (names, constants, + - * /, "
                "comparisons, in [...], and/or/not)"
            )
    return tree


def names(text: str) -> list[str]:
    """The columns ``text`` reads, in order of first use."""
    seen: list[str] = []
    for node in ast.walk(parse(text)):
        if isinstance(node, ast.Name) and node.id not in seen:
            seen.append(node.id)
    return seen


def evaluate(text: str, columns: Mapping[str, Column]) -> Column:
    """``text`` over ``columns`` (pyarrow arrays of one length)."""
    return _eval(parse(text), columns, text)


def _numeric(value: Column) -> Column:
    return pc.cast(value, pa.float64()) if pa.types.is_boolean(value.type) else value


def _constant(node: ast.expr, text: str) -> Any:
    if not isinstance(node, ast.Constant) or not isinstance(node.value, (int, float, str, bool)):
        raise ExpressionError(f"{text!r}: `in` takes a list of constants")
    return node.value


def _eval(node: ast.expr, columns: Mapping[str, Column], text: str) -> Column:
    recurse: Callable[[ast.expr], Column] = lambda n: _eval(n, columns, text)  # noqa: E731
    if isinstance(node, ast.Name):
        if node.id not in columns:
            raise ExpressionError(f"{text!r}: no column {node.id!r}; columns: {', '.join(columns)}")
        return columns[node.id]
    if isinstance(node, ast.Constant):
        if not isinstance(node.value, (int, float, str, bool)):
            raise ExpressionError(f"{text!r}: constant {node.value!r} is not a number, string or boolean")
        return pa.scalar(node.value)
    if isinstance(node, ast.BinOp):
        return pc.call_function(
            _ARITHMETIC[type(node.op)], [_numeric(recurse(node.left)), _numeric(recurse(node.right))]
        )
    if isinstance(node, ast.UnaryOp):
        operand = recurse(node.operand)
        return pc.invert(operand) if isinstance(node.op, ast.Not) else pc.negate(_numeric(operand))
    if isinstance(node, ast.BoolOp):
        combine = pc.and_kleene if isinstance(node.op, ast.And) else pc.or_kleene
        result = recurse(node.values[0])
        for value in node.values[1:]:
            result = combine(result, recurse(value))
        return result
    if isinstance(node, ast.Compare):
        return _compare(node, recurse, text)
    raise ExpressionError(f"{text!r}: {type(node).__name__} is not allowed")  # pragma: no cover - parse refuses


def _compare(node: ast.Compare, recurse: Callable[[ast.expr], Column], text: str) -> Column:
    result: Column | None = None
    left = recurse(node.left)
    for op, right_node in zip(node.ops, node.comparators):
        if isinstance(op, (ast.In, ast.NotIn)):
            if not isinstance(right_node, (ast.List, ast.Tuple, ast.Set)):
                raise ExpressionError(f"{text!r}: `in` takes a list of constants, e.g. x in ['a', 'b']")
            values = pa.array([_constant(e, text) for e in right_node.elts])
            step = pc.is_in(left, value_set=values.cast(left.type) if len(values) else values)
            step = pc.if_else(pc.is_null(left), pa.scalar(None, pa.bool_()), step)
            if isinstance(op, ast.NotIn):
                step = pc.invert(step)
            right = left
        elif type(op) in _COMPARE:
            right = recurse(right_node)
            a, b = left, right
            if pa.types.is_boolean(a.type) != pa.types.is_boolean(b.type):  # click == 1
                a, b = _numeric(a), _numeric(b)
            step = pc.call_function(_COMPARE[type(op)], [a, b])
        else:  # Is / IsNot
            raise ExpressionError(f"{text!r}: {type(op).__name__} is not allowed (use == or !=)")
        result = step if result is None else pc.and_kleene(result, step)
        left = right
    assert result is not None
    return result


_ALLOWED = (
    ast.Expression,
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.BinOp,
    ast.UnaryOp,
    ast.BoolOp,
    ast.Compare,
    ast.List,
    ast.Tuple,
    ast.Set,
    *_ARITHMETIC,
    *_COMPARE,
    ast.In,
    ast.NotIn,
    ast.USub,
    ast.Not,
    ast.And,
    ast.Or,
)
