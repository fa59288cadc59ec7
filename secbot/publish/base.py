"""The publisher contract: where decided alerts are shown.

Implementations: :mod:`secbot.publish.slack` (production) and :mod:`secbot.publish.console`
(``secbot demo --console``). Both pass ``tests/test_publisher_contract.py``.
"""

from __future__ import annotations

from typing import Protocol

from secbot.domain.alert import Alert
from secbot.pipeline.decision import Decision


class Publisher(Protocol):
    """Where decided alerts go (Slack in production, the console in the demo)."""

    async def publish(self, alert: Alert, decision: Decision) -> None:
        """Post (or thread, for duplicates) the alert. Idempotent per alert uuid. Raise to
        have it retried later."""

    async def correct(self, alert: Alert, decision: Decision, note: str) -> None:
        """The decided auto-close could not be applied: say so where the alert was published."""
