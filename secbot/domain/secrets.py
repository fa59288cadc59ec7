"""Secret redaction: one function every layer may run text through before it leaves the process.

:func:`redact` removes what looks like a credential — Slack tokens, ``Authorization`` values,
API keys in headers or query strings, userinfo in URLs — and every exact value registered
with :func:`register_secret` (the ``SecretStr`` settings, registered at start-up). It is a
pure function of its input and of that registry; it never raises and is idempotent, so
running a line through it twice (logs, then an error shown in Slack) changes nothing more.

It errs on the side of hiding: a harmless word that looks like a credential is masked rather
than a credential let through.
"""

from __future__ import annotations

import re
from urllib.parse import quote, quote_plus

REDACTED = "[REDACTED]"

#: Registered values shorter than this are ignored: masking every "ab" would make logs
#: unreadable, and the patterns still cover such a value where it has a recognisable shape.
MIN_SECRET_LENGTH = 4

_NOT_DONE = r"(?!\[REDACTED\])"

# scheme://userinfo@host — the whole userinfo goes (a user name can be a token too).
_USERINFO = re.compile(r"(?P<lead>\b[A-Za-z][A-Za-z0-9+.\-]*://)" + _NOT_DONE +
                       r"[^\s/?#@'\"<>]+@")

# Slack: xoxb- (bot), xoxp- (user), xoxa-/xoxr-/xoxs-, xoxe- and xoxe.xoxp- (rotating), xapp-.
_SLACK = re.compile(r"(?P<lead>\b(?:xox[a-z](?:\.xox[a-z])?|xapp)-)" + _NOT_DONE +
                    r"[A-Za-z0-9\-]+")

# Authorization schemes that are never followed by prose.
_STRONG_SCHEME = re.compile(r"(?P<lead>\b(?:Bearer|ApiKey|GenieKey)\s+(?:token=)?)" +
                            _NOT_DONE + r"[A-Za-z0-9._~+/=:\-]+", re.IGNORECASE)

# "Basic" and "Token" are also English words: mask only what looks like a credential
# (a digit or base64 punctuation somewhere, or a capital after the first character).
_WEAK_SCHEME = re.compile(r"(?P<lead>\b(?:Basic|Token|Digest)\s+(?:token=)?)" + _NOT_DONE +
                          r"(?=[^\s\"',;]*[0-9+/=]|[^\s\"',;]+[A-Z])[A-Za-z0-9._~+/=:\-]+")

_NAMES = (r"proxy-authorization|authorization|x-api-key|x-apikey|x-auth-token|api[_-]?key|"
          r"apikey|access[_-]?token|refresh[_-]?token|id[_-]?token|auth[_-]?token|"
          r"client[_-]?secret|private[_-]?key|secret|password|passwd|pwd|token")

# ?api_key=…&key=…: query parameters, including the short names providers use.
_QUERY = re.compile(r"(?P<lead>[?&;](?:" + _NAMES + r"|key|ticket|sig|signature|code)=)" +
                    _NOT_DONE + r"[^&#\s'\"]+", re.IGNORECASE)

# Possessive: once a scheme word is read it is never re-read as the value itself.
_SCHEME_WORD = r"(?:(?:Bearer|ApiKey|GenieKey|Basic|Token|Digest)\s+(?:token=)?)?+"

# authorization: …, 'x-api-key': '…', password=…, "token": "…" (headers, reprs, key=value).
_NAMED = re.compile(r"(?P<lead>(?P<q>[\"']?)\b(?:" + _NAMES + r")(?P=q)\s*[:=]\s*[\"']?" +
                    _SCHEME_WORD + r")" + _NOT_DONE + r"[^\s\"',;&}\]]+", re.IGNORECASE)

# 'key': '…' / "Key": "…" (GreyNoise, AbuseIPDB header names) only when quoted: the bare
# word "key" is everywhere in a deduplicating bot's log lines.
_QUOTED_KEY = re.compile(r"(?P<lead>(?P<q>[\"'])key(?P=q)\s*:\s*[\"']?)" + _NOT_DONE +
                         r"[^\s\"',;&}\]]+", re.IGNORECASE)

_MASK = r"\g<lead>" + REDACTED
_PATTERNS = (
    (_USERINFO, _MASK + "@"),
    *((p, _MASK) for p in (_SLACK, _STRONG_SCHEME, _WEAK_SCHEME, _QUERY, _NAMED, _QUOTED_KEY)),
)


class _Registry:
    """The exact values to mask, compiled into one alternation (longest first)."""

    def __init__(self) -> None:
        self.values: frozenset[str] = frozenset()
        self.pattern: re.Pattern[str] | None = None

    def add(self, values: set[str]) -> None:
        self.values = self.values | values
        ordered = sorted(self.values, key=len, reverse=True)
        self.pattern = re.compile("|".join(re.escape(v) for v in ordered)) if ordered else None

    def clear(self) -> None:
        self.values, self.pattern = frozenset(), None


_REGISTRY = _Registry()


def register_secret(*values: str | None) -> None:
    """Mask these exact values (and their URL-encoded forms) in everything :func:`redact` sees.

    Called once at start-up with the settings' secrets; values shorter than
    :data:`MIN_SECRET_LENGTH` and ``None`` are skipped.
    """
    found = set()
    for value in values:
        if value is None or len(value) < MIN_SECRET_LENGTH:
            continue
        found.update({value, quote(value, safe=""), quote_plus(value)})
    if found:
        _REGISTRY.add(found)


def forget_secrets() -> None:
    """Drop every registered value (tests; a process registers once and keeps them)."""
    _REGISTRY.clear()


def redact(text: str) -> str:
    """``text`` with every registered secret and every credential-shaped substring masked."""
    if not text:
        return text
    if _REGISTRY.pattern is not None:
        text = _REGISTRY.pattern.sub(REDACTED, text)
    for pattern, mask in _PATTERNS:
        text = pattern.sub(mask, text)
    return text


__all__ = ["MIN_SECRET_LENGTH", "REDACTED", "forget_secrets", "redact", "register_secret"]
