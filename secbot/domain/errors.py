"""The root of SecBot's exceptions: one base, so a caller (and a reviewer) can tell a product
failure from a bug in a library or in Python itself.

Every exception class the product defines subclasses :class:`SecBotError`, directly or via a
subclass, and keeps the builtin base callers already catch (``class PatternError(SecBotError,
ValueError)``). ``tests/test_errors.py`` checks the whole package.
"""

from __future__ import annotations

__all__ = ["SecBotError"]


class SecBotError(Exception):
    """Base of every exception SecBot raises on purpose."""
