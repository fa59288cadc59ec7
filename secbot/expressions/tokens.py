"""Token-level translation of expr-lang spellings into Python expression syntax.

Rules are written in the expr-lang style of the original bot (``&&``, ``||``, ``!``, ``true``,
``null``), so we rewrite tokens, never text: string literals and comments are single tokens and
stay untouched. The source is wrapped in parentheses first, which makes newlines from YAML
folded blocks insignificant and avoids INDENT tokens for continuation lines.

The translation keeps a character map so syntax errors can point at the source as written.
"""

from __future__ import annotations

import io
import tokenize
from dataclasses import dataclass

from secbot.expressions.errors import ExpressionSyntaxError

_PREFIX = "("
_SUFFIX = "\n)"
_NAMES = {"true": "True", "false": "False", "null": "None", "nil": "None"}
_OPEN = {"(": ")", "[": "]", "{": "}"}
_UNARY = {"!", "-", "+", "~"}
# Python keywords that can never start an operand (so ``!`` before them cannot be wrapped).
_NOT_OPERANDS = {"and", "or", "not", "in", "is", "if", "else", "for", "lambda"}
_FSTRING_START: int = getattr(tokenize, "FSTRING_START", -1)
_FSTRING_END: int = getattr(tokenize, "FSTRING_END", -1)
_SKIP = {tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT,
         tokenize.ENDMARKER}


@dataclass(frozen=True)
class Translation:
    """Python source for an expression plus a map back to the original characters."""

    text: str
    origin: tuple[int, ...]  # origin[i] = offset in the original source of text[i]
    source_length: int

    def original_offset(self, index: int) -> int:
        """Offset in the original source of character ``index`` of :attr:`text` (clamped)."""
        if not self.origin:
            return 0
        index = min(max(index, 0), len(self.origin) - 1)
        return min(max(self.origin[index], 0), self.source_length)

    def offset_of(self, lineno: int, char_col: int) -> int:
        """Original offset of a 1-based line / 0-based character column in :attr:`text`."""
        lines = _lines(self.text)
        start = sum(len(line) for line in lines[: max(lineno - 1, 0)])
        return self.original_offset(start + char_col)


def _lines(text: str) -> list[str]:
    """Lines with their ends, split on "\\n" only, as tokenize counts them."""
    parts = text.split("\n")
    return [part + "\n" for part in parts[:-1]] + [parts[-1]]


def _significant(tokens: list[tokenize.TokenInfo]) -> list[tokenize.TokenInfo]:
    """Tokens that carry meaning (3.11 emits whitespace as ERRORTOKEN after a stray ``!``)."""
    return [t for t in tokens
            if t.type not in _SKIP and not (t.type == tokenize.ERRORTOKEN and t.string.isspace())]


def _after_group(toks: list[tokenize.TokenInfo], j: int) -> int | None:
    """Index just after the bracket group opening at ``toks[j]``; None if unbalanced."""
    depth = 0
    for k in range(j, len(toks)):
        if toks[k].string in _OPEN:
            depth += 1
        elif toks[k].string in (")", "]", "}"):
            depth -= 1
            if depth == 0:
                return k + 1
    return None


def _operand_end(toks: list[tokenize.TokenInfo], j: int) -> int | None:
    """Index after the unary operand starting at ``toks[j]`` (atom + trailers), or None.

    expr-lang's ``!`` binds tighter than comparisons while Python's ``not`` binds looser, so
    ``!a == b`` must become ``(not a) == b``: we find where the operand ends to close the paren.
    """
    while j < len(toks) and toks[j].string in _UNARY:
        j += 1
    if j >= len(toks):
        return None
    tok = toks[j]
    end: int | None
    if tok.string in _OPEN:
        end = _after_group(toks, j)
    elif tok.type == tokenize.NAME and tok.string not in _NOT_OPERANDS:
        end = j + 1
    elif tok.type in (tokenize.NUMBER, tokenize.STRING):
        end = j + 1
        while end < len(toks) and toks[end].type == tokenize.STRING:
            end += 1
    else:
        return None
    while end is not None and end < len(toks):
        nxt = toks[end].string
        if nxt == "." and end + 1 < len(toks) and toks[end + 1].type == tokenize.NAME:
            end += 2
        elif nxt in ("(", "["):
            end = _after_group(toks, end)
        else:
            break
    return end


def _edits(toks: list[tokenize.TokenInfo], pos: dict[tuple[int, int], int]
           ) -> list[tuple[int, int, str]]:
    """(start, end, replacement) edits on the wrapped source."""
    edits: list[tuple[int, int, str]] = []
    fstring_depth = 0
    i = 0
    while i < len(toks):
        tok = toks[i]
        nxt = toks[i + 1] if i + 1 < len(toks) else None
        # Python >= 3.12 tokenizes f-strings; their "!r" conversions are not negations.
        fstring_depth += (tok.type == _FSTRING_START) - (tok.type == _FSTRING_END)
        if (tok.string in ("&", "|") and nxt is not None and nxt.string == tok.string
                and nxt.start == tok.end):
            word = " and " if tok.string == "&" else " or "
            edits.append((pos[tok.start], pos[nxt.end], word))
            i += 2
            continue
        if (tok.string == "!" and tok.type in (tokenize.ERRORTOKEN, tokenize.OP)
                and not fstring_depth):
            end = _operand_end(toks, i + 1)
            if end is None:
                edits.append((pos[tok.start], pos[tok.end], " not "))
            else:
                edits.append((pos[tok.start], pos[tok.end], "(not "))
                edits.append((pos[toks[end - 1].end], pos[toks[end - 1].end], ")"))
        elif (tok.type == tokenize.NAME and tok.string in _NAMES
              and not (i > 0 and toks[i - 1].string == ".")):
            edits.append((pos[tok.start], pos[tok.end], _NAMES[tok.string]))
        i += 1
    return edits


def _positions(text: str) -> dict[tuple[int, int], int]:
    """(row, col) -> absolute offset for every character position of ``text``."""
    table: dict[tuple[int, int], int] = {}
    offset = 0
    for row, line in enumerate(_lines(text), start=1):
        for col in range(len(line) + 1):
            table[(row, col)] = offset + col
        offset += len(line)
    return table


def translate(source: str) -> Translation:
    """Rewrite expr-lang operators/names of ``source`` into a parenthesised Python expression.

    Raises :class:`ExpressionSyntaxError` when the source cannot even be tokenised.
    """
    wrapped = _PREFIX + source + _SUFFIX
    tokens: list[tokenize.TokenInfo] = []
    positions = _positions(wrapped)
    try:
        tokens.extend(tokenize.generate_tokens(io.StringIO(wrapped).readline))
    except (tokenize.TokenError, SyntaxError) as exc:
        _check_brackets(_significant(tokens), positions, source)
        raise ExpressionSyntaxError(_token_error_message(exc), None, source) from None
    significant = _significant(tokens)
    _check_brackets(significant, positions, source)
    edits = sorted(_edits(significant, positions), key=lambda e: (e[0], e[1]))
    chars: list[str] = []
    origin: list[int] = []
    cursor = 0
    for start, end, text in edits:
        chars.append(wrapped[cursor:start])
        origin.extend(range(cursor - 1, start - 1))  # -1: the "(" we prepended
        chars.append(text)
        origin.extend([start - 1] * len(text))
        cursor = max(cursor, end)
    chars.append(wrapped[cursor:])
    origin.extend(range(cursor - 1, len(wrapped) - 1))
    return Translation("".join(chars), tuple(origin), len(source))


def _check_brackets(toks: list[tokenize.TokenInfo], pos: dict[tuple[int, int], int],
                    source: str) -> None:
    """Report unbalanced brackets in the user's source at the offending bracket.

    Without this, ``1) or (2`` would pair with our wrapping parentheses and be accepted, and an
    unclosed bracket would be reported at the wrapper instead of where the user opened it.
    """
    stack: list[tokenize.TokenInfo] = []
    for tok in toks:
        # Skip our wrapping "(" (offset 0 of the wrapped text) and ")" (after the source).
        if tok.type != tokenize.OP or not 1 <= pos[tok.start] <= len(source):
            continue
        if tok.string in _OPEN:
            stack.append(tok)
        elif tok.string in (")", "]", "}"):
            if not stack:
                raise ExpressionSyntaxError(f"syntax error: unmatched '{tok.string}'",
                                            pos[tok.start] - 1, source)
            stack.pop()
    if stack:
        raise ExpressionSyntaxError(f"syntax error: '{stack[-1].string}' was never closed",
                                    pos[stack[-1].start] - 1, source)


def _token_error_message(exc: Exception) -> str:
    text = str(exc.args[0]) if exc.args else str(exc)
    if "EOF" in text:
        return "syntax error: unbalanced brackets or unterminated string"
    return f"syntax error: {text}"
