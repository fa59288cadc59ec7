"""Pure helper functions and the method whitelists available to expressions.

Everything here is deterministic, side-effect free and bounded: results that could grow
(``replace``, ``join``, ``str`` of a collection) are size-checked *before* they are built.
Helpers are lenient with missing data (``startswith(None, "x")`` is False) because alert fields
are often absent, and ``cidr_match``/``matches``/``startswith``/``endswith`` accept a list for
their first argument (ECS fields can be arrays) and then mean "any element".
"""

from __future__ import annotations

import functools
import ipaddress
import threading
from collections.abc import Callable, Iterable, Mapping
from time import thread_time
from types import MappingProxyType
from typing import Any

from secbot.domain.alert import lookup as _lookup
from secbot.expressions.errors import ExpressionError
from secbot.expressions.limits import (
    DEFAULT_TIMEOUT,
    MAX_MATCH_INPUT,
    MAX_ROUND_DIGITS,
    MAX_SIZE,
)
from secbot.expressions.patterns import PatternError, compile_pattern, search

_IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_SCALARS = (str, int, float, bool, type(None))


class _Deadline(threading.local):
    """The running evaluation's deadline, so ``matches()`` can stop a long scan in time."""

    value: float | None = None


CURRENT_DEADLINE = _Deadline()


def _too_big(what: str) -> ExpressionError:
    return ExpressionError(f"{what} would be longer than {MAX_SIZE:,} items")


def _any_of(value: Any, test: Callable[[Any], bool]) -> bool:
    """``test(value)``, or any element's result when value is a list/tuple (ECS arrays)."""
    if isinstance(value, (list, tuple)):
        return any(test(item) for item in value)
    return test(value)


# -- network and pattern helpers -----------------------------------------------------------

@functools.lru_cache(maxsize=1024)
def _network(cidr: str) -> _IpNetwork:
    try:
        return ipaddress.ip_network(cidr.strip(), strict=False)
    except ValueError:
        raise ExpressionError(f"cidr_match: {cidr!r} is not a valid network") from None


def cidr_match(ip: Any, cidr: Any) -> bool:
    """True if ``ip`` (or any of a list of IPs) lies in ``cidr`` (or any of a list of CIDRs).

    Values that are not IP addresses (None, hostnames…) simply do not match.
    """
    cidrs = cidr if isinstance(cidr, (list, tuple)) else (cidr,)
    if not all(isinstance(c, str) for c in cidrs):
        raise ExpressionError("cidr_match: the network must be a string like '10.0.0.0/8'")
    networks = [_network(c) for c in cidrs]

    def one(value: Any) -> bool:
        if not isinstance(value, str) or len(value) > 64:
            return False
        try:
            address = ipaddress.ip_address(value.strip())
        except ValueError:
            return False
        return any(address.version == net.version and address in net for net in networks)

    return _any_of(ip, one)


def matches(value: Any, regex: str) -> bool:
    """True if the regular expression ``regex`` matches anywhere in ``value`` (re.search).

    RE2 syntax, linear time (see :mod:`secbot.expressions.patterns`); numbers are matched as
    text, other non-strings never match; inputs over MAX_MATCH_INPUT characters are errors.
    """
    try:
        program = compile_pattern(regex)
    except PatternError as exc:
        raise ExpressionError(f"matches: {exc}") from None
    deadline = CURRENT_DEADLINE.value
    if deadline is None:
        deadline = thread_time() + DEFAULT_TIMEOUT

    def one(item: Any) -> bool:
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            item = str(item)
        if not isinstance(item, str):
            return False
        if len(item) > MAX_MATCH_INPUT:
            raise ExpressionError(f"matches: value longer than {MAX_MATCH_INPUT:,} characters")
        return search(program, item, deadline)

    return _any_of(value, one)


# -- string helpers --------------------------------------------------------------------------

def _text(value: Any) -> str:
    return "" if value is None else value if isinstance(value, str) else safe_str(value)


def lower(value: Any) -> str:
    """Lower-cased text (None → "")."""
    return _text(value).lower()


def upper(value: Any) -> str:
    """Upper-cased text (None → "")."""
    return _text(value).upper()


def startswith(value: Any, prefix: str | tuple[str, ...]) -> bool:
    """True if the text (or any element of a list) starts with ``prefix``."""
    return _any_of(value, lambda v: isinstance(v, str) and v.startswith(prefix))


def endswith(value: Any, suffix: str | tuple[str, ...]) -> bool:
    """True if the text (or any element of a list) ends with ``suffix``."""
    return _any_of(value, lambda v: isinstance(v, str) and v.endswith(suffix))


def contains(container: Any, item: Any) -> bool:
    """``item in container`` for text, lists and mappings (keys); False when it cannot apply."""
    if isinstance(container, str):
        return isinstance(item, str) and item in container
    if isinstance(container, (list, tuple, set, frozenset, Mapping)):
        try:
            return item in container
        except TypeError:  # unhashable item looked up in a mapping/set
            return False
    return False


def estimated_length(value: Any, budget: int = MAX_SIZE) -> int:
    """Upper bound of ``len(str(value))``, stopping as soon as it exceeds ``budget``."""
    stack = [value]
    total = 0
    while stack and total <= budget:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item) + 4
        elif isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
            total += 16
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
            total += 4
        else:
            total += 32 if isinstance(item, (float, bool, type(None))) else len(repr(item))
    return total


def safe_str(value: Any = "") -> str:
    """``str(value)``, refusing results over MAX_SIZE before building them."""
    if isinstance(value, str):
        return value
    if not isinstance(value, _SCALARS) and estimated_length(value, MAX_SIZE) > MAX_SIZE:
        raise _too_big("str()")
    return str(value)


def safe_replace(text: str, old: str, new: str, count: int = -1) -> str:
    """``str.replace`` with the result length checked first (``"".replace("", big)`` grows)."""
    if not (isinstance(text, str) and isinstance(old, str) and isinstance(new, str)):
        raise ExpressionError("replace() arguments must be strings")
    hits = text.count(old) if old else len(text) + 1
    if count >= 0:
        hits = min(hits, count)
    if len(text) + hits * (len(new) - len(old)) > MAX_SIZE:
        raise _too_big("replace()")
    return text.replace(old, new, count)


def safe_join(separator: str, items: Iterable[Any]) -> str:
    """``separator.join(items)`` with the result length checked first."""
    parts = tuple(items)
    if not all(isinstance(part, str) for part in parts):
        raise ExpressionError("join() needs a list of strings")
    if sum(map(len, parts)) + len(separator) * max(len(parts) - 1, 0) > MAX_SIZE:
        raise _too_big("join()")
    return separator.join(parts)


# -- numeric helpers ---------------------------------------------------------------------------

def safe_round(number: Any, ndigits: int | None = None) -> Any:
    """``round`` with ``ndigits`` bounded (a huge negative one computes a huge power of ten)."""
    if ndigits is not None and (not isinstance(ndigits, int) or abs(ndigits) > MAX_ROUND_DIGITS):
        raise ExpressionError(f"round(): ndigits must be an integer within ±{MAX_ROUND_DIGITS}")
    return round(number, ndigits)


def safe_sum(values: Iterable[Any], start: Any = 0) -> Any:
    """``sum`` of numbers only (summing lists concatenates quadratically)."""
    items = tuple(values)
    if not all(isinstance(item, (int, float)) for item in (*items, start)):
        raise ExpressionError("sum() only adds numbers")
    return sum(items, start)


def lookup(mapping: Any, name: str, default: Any = None) -> Any:
    """Dotted field lookup in the alert (``lookup(alert, "host.name")``), nested or literal."""
    if not isinstance(mapping, Mapping) or not isinstance(name, str):
        return default
    return _lookup(mapping, name, default)


# -- named lists (``lists/<name>.txt``) -------------------------------------------------------

class _Lists(threading.local):
    """The named lists the running evaluation sees. The rule loader binds them to each
    expression at load (:func:`secbot.expressions.compile_expression` ``lists=``); the
    evaluator sets this around one evaluation, so ``inList`` reads no file and no global."""

    value: Mapping[str, frozenset[str]] | None = None


CURRENT_LISTS = _Lists()

#: Function names whose second argument names a list (checked statically at load).
LIST_FUNCTIONS = frozenset({"inList"})


def list_value(value: str) -> str:
    """How a list entry and a looked-up value compare: trimmed and case-folded (emails, host
    and user names are case-insensitive where they come from)."""
    return value.strip().casefold()


def value_in_list(lists: Mapping[str, frozenset[str]] | None, value: Any, name: Any) -> bool:
    """True if ``value`` (or any element of a list of values) is in the named list.

    Text compares trimmed and case-folded; numbers as their text; None and other values never
    match. An unknown list is an error (the rule expected a list that is not loaded), never a
    quiet False.
    """
    if not isinstance(name, str):
        raise ExpressionError("inList(): the list name must be a string like \"vips\"")
    if lists is None or name not in lists:
        known = ", ".join(sorted(lists)) if lists else "none loaded"
        raise ExpressionError(f"inList(): unknown list {name!r} (lists: {known})")
    entries = lists[name]

    def one(item: Any) -> bool:
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            item = str(item)
        return isinstance(item, str) and len(item) <= MAX_MATCH_INPUT and (
            list_value(item) in entries)

    return _any_of(value, one)


def in_list(value: Any, name: Any) -> bool:
    """``inList(value, "vips")``: :func:`value_in_list` over the lists bound to the running
    expression."""
    return value_in_list(CURRENT_LISTS.value, value, name)


#: Functions callable by name in an expression (besides the I/O functions).
HELPERS: Mapping[str, Callable[..., Any]] = MappingProxyType({
    "cidr_match": cidr_match,
    "matches": matches,
    "lower": lower,
    "upper": upper,
    "startswith": startswith,
    "endswith": endswith,
    "contains": contains,
    "lookup": lookup,
    "inList": in_list,
    "len": len,
    "any": any,
    "all": all,
    "int": int,
    "float": float,
    "bool": bool,
    "str": safe_str,
    "min": min,
    "max": max,
    "abs": abs,
    "round": safe_round,
    "sum": safe_sum,
    "sorted": sorted,
    "list": list,
    "tuple": tuple,
    "set": set,
})

# -- methods callable on values (value.method(...)) --------------------------------------------

def _get(mapping: Mapping[Any, Any], key: Any, default: Any = None) -> Any:
    return mapping.get(key, default)


STR_METHODS: Mapping[str, Callable[..., Any]] = {
    name: getattr(str, name) for name in (
        "lower", "upper", "casefold", "title", "capitalize", "strip", "lstrip", "rstrip",
        "startswith", "endswith", "split", "rsplit", "splitlines", "partition", "rpartition",
        "count", "find", "rfind", "index", "rindex", "removeprefix", "removesuffix",
        "isdigit", "isalpha", "isalnum", "isspace", "islower", "isupper", "isdecimal",
        "isnumeric", "isascii")
} | {"replace": safe_replace, "join": safe_join}

MAPPING_METHODS: Mapping[str, Callable[..., Any]] = {
    "get": _get,
    "keys": lambda m: tuple(m.keys()),
    "values": lambda m: tuple(m.values()),
    "items": lambda m: tuple(m.items()),
}

SEQUENCE_METHODS: Mapping[str, Callable[..., Any]] = {
    "count": lambda s, item: s.count(item),
    "index": lambda s, item: s.index(item),
}

#: Every method name an expression may call; anything else is rejected at compile time.
METHOD_NAMES: frozenset[str] = frozenset(STR_METHODS) | frozenset(MAPPING_METHODS) | frozenset(
    SEQUENCE_METHODS)
