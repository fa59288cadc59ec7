"""The ``secbot`` command line (DESIGN.md §3).

The commands are declared in :mod:`secbot.cli.entry` and import their implementations only
when run, so ``secbot --help`` and ``secbot stats`` start without loading every client library.
"""

from __future__ import annotations

from secbot.cli.entry import app


def main() -> None:
    app()


__all__ = ["app", "main"]
