"""What builtins, methods and operators cost, in work units, *before* they run.

A syntax node is cheap to walk but one node can be a C call that touches 100,000 items:
``sorted(big)`` is one node. So a call is charged by the size of what it touches, computed from
its arguments before it runs (see :mod:`.budget`). One unit is about one item touched (~5-10 ns);
the numbers are estimates that err on the expensive side, the time allowance backs them up.

Sizes are *logical* (:func:`logical_size`): a nested container counts once per reference, as
comparing or sorting it touches it once per reference.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from secbot.expressions.limits import MAX_SIZE

#: The containers logical sizes look into.
CONTAINERS = (tuple, list, dict, set, frozenset, MappingProxyType)
#: Types whose ``len`` is their size.
SIZED = frozenset({str, tuple, list, dict, set, frozenset})

def logical_size(value: Any, limit: int = MAX_SIZE) -> int:
    """Items in ``value`` counting a nested container once per reference to it.

    ``[[1] * 10**5] * 10**5`` holds only 200,000 objects, but comparing or sorting it touches
    10**10 items in one uninterruptible C call; this counts it as 10**10. Strings count as one
    item (they compare in linear time). Stops counting once past ``limit``.
    """
    if type(value) not in CONTAINERS:
        return len(value) if type(value) in SIZED else 1
    total = 0
    stack = [value]
    while stack:
        current = stack.pop()
        items = current.values() if isinstance(current, Mapping) else current
        total += len(current)
        if total > limit:
            return total
        # The C-level scan first: most containers hold no containers, and a Python-level
        # filter over 100,000 items would cost more than the operation being priced.
        if any(map(_CONTAINER_TYPES.__contains__, map(type, items))):
            stack.extend(item for item in items if type(item) in CONTAINERS)
    return total


_CONTAINER_TYPES = frozenset(CONTAINERS)
#: How the evaluator measures a value: characters of a string, logical size of a container
#: (it caches sizes of the values it has seen), 1 for anything else.
Measure = Callable[[Any], int]


def _first(args: tuple[Any, ...], measure: Measure) -> int:
    return measure(args[0]) if args else 1


def _every(args: tuple[Any, ...], measure: Measure) -> int:
    return 1 + sum(measure(arg) for arg in args)


def _compare_each(args: tuple[Any, ...], measure: Measure) -> int:
    # min/max/count/index compare every item: ~2 units each (measured on strings).
    return 2 * _every(args, measure)


def _sort(args: tuple[Any, ...], measure: Measure) -> int:
    # n log n comparisons, each touching an item (logical size covers nested items).
    count = _first(args, measure)
    return count * max(count.bit_length(), 1)


def _pairs(args: tuple[Any, ...], measure: Measure) -> int:
    # cidr_match(ips, cidrs): every address against every network.
    if len(args) < 2:
        return 1
    return measure(args[0]) * measure(args[1])


def _join(args: tuple[Any, ...], measure: Measure) -> int:
    # separator.join(items): the characters of the result, plus one per item.
    if len(args) < 2 or not isinstance(args[1], (list, tuple)):
        return _every(args, measure)
    items = args[1]
    if len(items) > MAX_SIZE:
        return len(items)  # join() refuses it by its own size check
    return len(items) + sum(len(item) for item in items if isinstance(item, str))


def _constant(args: tuple[Any, ...], measure: Measure) -> int:
    return 1


_HELPER_COSTS: dict[str, Callable[[tuple[Any, ...], Measure], int]] = {
    "sorted": _sort, "cidr_match": _pairs, "len": _constant, "bool": _constant,
    "abs": _constant, "round": _constant, "sum": _first, "any": _first, "all": _first,
    "list": _first, "tuple": _first, "set": _first, "lookup": _every,
    "min": _compare_each, "max": _compare_each, "contains": _compare_each,
}
_METHOD_COSTS: dict[str, Callable[[tuple[Any, ...], Measure], int]] = {
    "join": _join, "get": _constant, "keys": _first, "values": _first, "items": _first,
    "count": _compare_each, "index": _compare_each,
}


def call_cost(name: str, args: tuple[Any, ...], *, method: bool, measure: Measure) -> int:
    """Units a call of helper (or method, receiver first in ``args``) ``name`` costs.

    Anything not listed touches each argument once (``min``, ``max``, ``contains``,
    ``matches``, ``str``, string methods…).
    """
    table = _METHOD_COSTS if method else _HELPER_COSTS
    return table.get(name, _every)(args, measure)


def compare_cost(op: ast.cmpop, left: Any, right: Any, measure: Measure) -> int:
    """``in`` scans the container; ``==``/``<`` on containers or strings walk both."""
    if isinstance(op, (ast.In, ast.NotIn)):
        return 2 * measure(right)
    if isinstance(op, (ast.Is, ast.IsNot)):
        return 1
    if isinstance(left, _COMPARED) and isinstance(right, _COMPARED):
        return min(measure(left), measure(right))
    return 1


_COMPARED = (str, *CONTAINERS)


def binop_cost(op: ast.operator, left: Any, right: Any) -> int:
    """Units of ``left op right``: the size of a built string/list, the digits of a number.

    Capped at MAX_SIZE: anything bigger is refused by the operator's own size check, whose
    message says what is wrong ("repetition would be longer…").
    """
    if isinstance(op, ast.Mult):
        count, sequence = (left, right) if isinstance(left, int) else (right, left)
        if isinstance(count, int) and type(sequence) in SIZED:
            return min(max(count, 0) * len(sequence), MAX_SIZE)
    if isinstance(op, ast.Add) and type(left) in SIZED and type(right) in SIZED:
        return min(len(left) + len(right), MAX_SIZE)
    if isinstance(left, int) and isinstance(right, int):
        return 1 + (left.bit_length() + min(right.bit_length(), 64)) // 16
    return 1


def slice_cost(container: Any, bounds: slice) -> int:
    """Items a slice copies, without building it."""
    if type(container) not in SIZED:
        return 1
    try:
        return len(range(*bounds.indices(len(container))))
    except (TypeError, ValueError):
        return 1  # the slice itself fails with a clear error
