"""``SECBOT_AUTO_APPROVE_HOURS``: the hours in which a response action approves itself.

``"22-07 Europe/Oslo"`` means from 22:00 to 06:59 Oslo time (the window may wrap midnight;
``"09-17 UTC"`` does not). The time zone is an IANA name (``zoneinfo``), so daylight saving is
the zone's business, not the operator's. The end hour is exclusive; equal hours mean never.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from secbot.domain.errors import SecBotError


class WindowError(SecBotError, ValueError):
    """The setting does not read as ``HH-HH Zone/Name``."""


@dataclass(frozen=True)
class AutoApproveWindow:
    start: int
    end: int
    zone: ZoneInfo
    text: str

    @classmethod
    def parse(cls, text: str) -> AutoApproveWindow:
        hours, _, zone = text.strip().partition(" ")
        start, sep, end = hours.partition("-")
        try:
            first, last = int(start), int(end)
            tz = ZoneInfo(zone.strip() or "UTC")
        except (ValueError, ZoneInfoNotFoundError) as exc:
            raise WindowError(f"{text!r}: expected e.g. '22-07 Europe/Oslo'") from exc
        if not sep or not (0 <= first <= 23 and 0 <= last <= 24):
            raise WindowError(f"{text!r}: hours are 0-23, e.g. '22-07 Europe/Oslo'")
        return cls(first, last % 24, tz, text.strip())

    def contains(self, moment: datetime) -> bool:
        """True when ``moment`` (aware) falls inside the window, in the window's zone."""
        hour = moment.astimezone(self.zone).hour
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= hour < self.end
        return hour >= self.start or hour < self.end
