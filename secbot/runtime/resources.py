"""What the composition root built and must close."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Resources:
    """Clients the composition root built, closed in reverse order."""

    closers: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)

    async def aclose(self) -> None:
        for closer in reversed(self.closers):
            with contextlib.suppress(Exception):
                await closer()
