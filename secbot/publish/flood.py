"""Flood control: when one rule fires faster than a threshold, fold its alerts into one digest
message per channel, edited in place, instead of flooding the channel. Nothing is dropped:
every alert is listed (the newest first, a count for the rest) and stays triageable in the SIEM.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from secbot.domain.alert import Alert
from secbot.render import mrkdwn as md

DIGEST_LINES = 15
#: What a digest message maps to in the store (``digest:<channel>:<ts>``): not an alert uuid.
DIGEST_PREFIX = "digest:"


@dataclass
class DigestState:
    ts: str
    total: int = 0
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=DIGEST_LINES))


class FloodGuard:
    """Counts posts per (rule, channel) in a sliding minute. ``threshold <= 0`` disables it."""

    def __init__(
        self, threshold: int = 20, window: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.threshold = threshold
        self.window = window
        self._clock = clock
        self._recent: dict[tuple[str, str], deque[float]] = {}
        self.digests: dict[tuple[str, str], DigestState] = {}

    def flooding(self, rule_id: str, channel: str) -> bool:
        """Record one alert; True when this one should go to the digest."""
        if self.threshold <= 0:
            return False
        key = (rule_id, channel)
        now = self._clock()
        recent = self._recent.setdefault(key, deque())
        recent.append(now)
        while recent and now - recent[0] > self.window:
            recent.popleft()
        if len(recent) > self.threshold:
            return True
        self.digests.pop(key, None)  # the flood is over: the next one starts a new digest
        return False


def digest_id(channel: str, ts: str) -> str:
    """The id a digest message is linked to; its alerts are that id's group members."""
    return f"{DIGEST_PREFIX}{channel}:{ts}"


def digest_line(alert: Alert) -> str:
    return (
        f"• `{md.escape(alert.uuid[:12])}` {md.escape(alert.get_field('@timestamp') or '')} "
        f"{md.escape(alert.reason)[:200]}"
    )


def digest_text(rule_name: str, state: DigestState, threshold: int) -> str:
    head = (
        f":rotating_light: *{md.escape(rule_name)}* is firing more than {threshold} alerts a "
        f"minute, so SecBot switched it to this digest instead of one message each. "
        f"*{state.total}* alerts so far; newest first:"
    )
    rest = state.total - len(state.lines)
    tail = [f"…and {rest} more (see the SIEM)"] if rest > 0 else []
    return md.truncate("\n".join([head, *reversed(state.lines), *tail]), md.SECTION_TEXT_MAX)
