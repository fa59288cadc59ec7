"""A small, documented subset of Painless: enough for Kibana's alert workflow scripts.

The emulator runs ``_update_by_query`` scripts by *interpreting* them, never by recognising a
known script, so a client's script that is wrong (a typo'd field, a missing ``else``) changes
documents wrongly here just as it would on Elasticsearch.

Supported (the statement shapes of Kibana's ``update_alerts_workflow_status`` and
``set_alert_tags`` scripts, plus their obvious neighbours):

- statements: ``if (…) {…} else if (…) {…} else {…}``; ``for (x in list)`` and
  ``for (def x : list)``; declarations ``List|Map|def|boolean|String|int|long name = expr;``;
  assignment ``target = expr;``; expression statements (method calls). As in Painless, the
  last statement of a block needs no ``;``. ``//`` and ``/* */`` comments.
- expressions: ``||``, ``&&``, ``==``, ``!=``, ``!``, parentheses; literals: strings in single
  or double quotes, integers, ``true``/``false``/``null``, ``[]``, ``[a, b]``, ``[:]``;
  ``ctx`` (``_source``, ``_id``, ``_index``, ``op``) and ``params``; map access by
  ``m['key']``, ``m["key"]`` and ``m.key``; list access ``l[0]``.
- methods: lists ``add``, ``contains``, ``size``, ``isEmpty``, ``remove(index)``;
  maps ``containsKey``, ``get``, ``put``, ``remove(key)``, ``size``, ``isEmpty``.
- for runtime fields (:mod:`secbot_emulators.elastic_runtime`): numeric ``+ - < > <= >=``,
  host functions called by name (``emit(v)``) and host objects (``doc['f'].value``, dates'
  ``toInstant().toEpochMilli()``).

``ctx._source['a.b']`` is the literal key ``"a.b"``: Painless does not resolve dotted paths
through nested objects. Anything outside the subset is a compile error; a null dereference or
a wrong receiver is a runtime error (both a ``script_exception``, as Elasticsearch reports).
"""

from __future__ import annotations

import json
import re

from secbot_emulators.painless_nodes import (
    Call,
    Const,
    Function,
    Item,
    Node,
    Operator,
    PainlessError,
    Scope,
    Script,
    Statement,
    Var,
    run_all,
    truth,
)

__all__ = ["PainlessError", "Script", "compile_script"]

_TYPES = frozenset({"List", "Map", "def", "boolean", "String", "int", "long", "ArrayList",
                    "HashMap"})
_TOKEN = re.compile(r"""
    (?P<space>\s+|//[^\n]*|/\*.*?\*/)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<number>\d+)
  | (?P<name>[A-Za-z_][A-Za-z_0-9]*)
  | (?P<op>==|!=|<=|>=|&&|\|\||[!=<>+\-.\[\](){};,:])
""", re.VERBOSE | re.DOTALL)
_END = "<end of script>"
_LEVELS = {"==": ("==", "!="), "<": ("<", ">", "<=", ">="), "+": ("+", "-")}


def _tokens(source: str) -> list[str]:
    out, position = [], 0
    while position < len(source):
        match = _TOKEN.match(source, position)
        if match is None:
            raise PainlessError("compile error", f"unexpected character at offset {position}: "
                                f"{source[position:position + 20]!r}")
        if match.lastgroup != "space":
            out.append(match.group())
        position = match.end()
    return out


def _string(token: str) -> str:
    body = token[1:-1]
    if token[0] == "'":  # single-quoted: only \' and \\ are escapes in Painless
        return body.replace("\\'", "'").replace("\\\\", "\\")
    return str(json.loads(token))


class _Parser:
    def __init__(self, source: str) -> None:
        self.tokens = _tokens(source)
        self.at = 0

    # --- token helpers ----------------------------------------------------------------------
    def peek(self, ahead: int = 0) -> str:
        index = self.at + ahead
        return self.tokens[index] if index < len(self.tokens) else _END

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token == _END or (expected is not None and token != expected):
            raise PainlessError("compile error", f"expected {expected or 'a token'}, found "
                                f"{token!r} (token {self.at})")
        self.at += 1
        return token

    def accept(self, token: str) -> bool:
        if self.peek() == token:
            self.at += 1
            return True
        return False

    # --- statements -------------------------------------------------------------------------
    def script(self) -> list[Statement]:
        body = []
        while self.peek() != _END:
            body.append(self.statement())
        return body

    def block(self) -> list[Statement]:
        if not self.accept("{"):
            return [self.statement()]
        body = []
        while not self.accept("}"):
            body.append(self.statement())
        return body

    def statement(self) -> Statement:
        token = self.peek()
        if token == "if":
            return self.if_statement()
        if token == "for":
            return self.for_statement()
        if token in _TYPES and _is_name(self.peek(1)):
            self.take()
            name = self.take()
            value: Node = Const(None)
            if self.accept("="):
                value = self.expression()
            self.end_statement()
            return lambda scope: scope.__setitem__(name, value.get(scope))
        return self.expression_statement()

    def expression_statement(self) -> Statement:
        target = self.expression()
        if self.accept("="):
            value = self.expression()
            self.end_statement()
            return lambda scope: target.set(scope, value.get(scope))
        if not isinstance(target, (Call, Function)):
            raise PainlessError("compile error", "not a statement: only assignments and "
                                "method calls may stand alone")
        self.end_statement()
        call = target

        def run(scope: Scope) -> None:
            call.get(scope)  # evaluated for its effect (add, remove, put)
        return run

    def end_statement(self) -> None:
        # Painless lets the last statement of a block (or script) omit its semicolon.
        if not self.accept(";") and self.peek() not in ("}", _END):
            raise PainlessError("compile error", f"expected ';', found {self.peek()!r}")

    def if_statement(self) -> Statement:
        self.take("if")
        self.take("(")
        condition = self.expression()
        self.take(")")
        then = self.block()
        otherwise: list[Statement] = []
        if self.accept("else"):
            otherwise = self.block()

        def run(scope: Scope) -> None:
            run_all(then if truth(condition.get(scope)) else otherwise, scope)
        return run

    def for_statement(self) -> Statement:
        self.take("for")
        self.take("(")
        if self.peek() in _TYPES and _is_name(self.peek(1)):
            self.take()
        name = self.take()
        if not _is_name(name) or self.peek() not in ("in", ":"):
            raise PainlessError("compile error", "only 'for (x in list)' and "
                                "'for (def x : list)' loops are supported")
        self.take()
        items = self.expression()
        self.take(")")
        body = self.block()

        def run(scope: Scope) -> None:
            values = items.get(scope)
            if not isinstance(values, list):
                raise PainlessError("runtime error", f"cannot iterate over "
                                    f"{type(values).__name__}")
            for value in list(values):
                scope[name] = value
                run_all(body, scope)
        return run

    # --- expressions ------------------------------------------------------------------------
    def expression(self) -> Node:
        return self.binary(("||", "&&", "==", "<", "+"))

    def binary(self, levels: tuple[str, ...]) -> Node:
        if not levels:
            return self.unary()
        left = self.binary(levels[1:])
        ops = _LEVELS.get(levels[0], (levels[0],))
        while self.peek() in ops:
            op = self.take()
            left = Operator(op, left, self.binary(levels[1:]))
        return left

    def unary(self) -> Node:
        if self.accept("!"):
            return Operator("!", self.unary())
        return self.postfix(self.primary())

    def postfix(self, node: Node) -> Node:
        while True:
            if self.accept("."):
                name = self.take()
                if not _is_name(name):
                    raise PainlessError("compile error", f"expected a name after '.', "
                                        f"found {name!r}")
                node = Call(node, name, self.arguments()) if self.peek() == "(" else Item(
                    node, Const(name))
            elif self.accept("["):
                key = self.expression()
                self.take("]")
                node = Item(node, key)
            else:
                return node

    def arguments(self) -> list[Node]:
        self.take("(")
        args: list[Node] = []
        while not self.accept(")"):
            if args:
                self.take(",")
            args.append(self.expression())
        return args

    def primary(self) -> Node:
        token = self.take()
        if token[0] in "'\"":
            return Const(_string(token))
        if token.isdigit():
            return Const(int(token))
        literals = {"null": None, "true": True, "false": False}
        if token in literals:
            return Const(literals[token])
        if token == "(":
            inner = self.expression()
            self.take(")")
            return inner
        if token == "[":
            return self.collection()
        if _is_name(token) and token not in _TYPES and self.peek() == "(":
            return Function(token, self.arguments())
        if _is_name(token) and token not in _TYPES:
            return Var(token)
        raise PainlessError("compile error", f"unexpected {token!r} (token {self.at - 1})")

    def collection(self) -> Node:
        if self.accept(":"):
            self.take("]")
            return _NewMap()
        items: list[Node] = []
        while not self.accept("]"):
            if items:
                self.take(",")
            items.append(self.expression())
        return _NewList(items)


class _NewList(Node):
    def __init__(self, items: list[Node]) -> None:
        self.items = items

    def get(self, scope: Scope) -> object:
        return [item.get(scope) for item in self.items]


class _NewMap(Node):
    def get(self, scope: Scope) -> object:
        return {}


def _is_name(token: str) -> bool:
    return token != _END and (token[0].isalpha() or token[0] == "_")


def compile_script(source: str) -> Script:
    """Parse ``source``; raises :class:`PainlessError` (``compile error``) outside the subset."""
    return Script(_Parser(source).script())
