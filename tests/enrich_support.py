"""Test-side helpers for the enricher tests: the parts of the old ``enrich_standins`` that
need the product (an :class:`Alert`, a fast :class:`RetryPolicy`). The provider stand-ins
themselves live in :mod:`secbot_emulators.providers` and import nothing from secbot."""

from __future__ import annotations

from typing import Any

from secbot.domain.alert import Alert
from secbot.enrich.http import RetryPolicy
from secbot_emulators.providers import alert_source

#: Retries without real waiting, so 429 tests take milliseconds.
FAST = RetryPolicy(attempts=3, base=0.001, cap=0.002, max_retry_after=0.05)


def alert(**fields: Any) -> Alert:
    return Alert.from_hit(alert_source(**fields))
