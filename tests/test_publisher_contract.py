"""The Publisher contract (``secbot/publish/base.py``), run over every implementation.

One parametrised fixture builds each publisher against what a user would look at: the Slack
stand-in's channel (``secbot_emulators.slack``, reached through the real ``AsyncWebClient``) for
:class:`SlackPublisher`, the terminal text for :class:`ConsolePublisher`. Every test asks the
same questions of both through a small :class:`Surface`: which alerts are shown at top level,
which are attached under which first alert, and what text sits where the alert was shown.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any, Protocol

import pytest
from rich.console import Console
from slack_sdk.web.async_client import AsyncWebClient

from secbot.domain.alert import Alert
from secbot.pipeline.decision import Decision
from secbot.publish.base import Publisher
from secbot.publish.console import ConsolePublisher
from secbot.publish.slack import SlackPublisher
from secbot.store.memory import MemoryStore
from secbot_emulators.slack import SlackEmulator

CHANNEL = "C0SECALERTS"


class Surface(Protocol):
    """What a person sees where the publisher shows alerts."""

    def top_level(self) -> list[str]:
        """Alert uuids shown as their own entry, in order, once per time shown."""

    def attached_under(self, first_uuid: str) -> str:
        """Everything shown attached to ``first_uuid``'s entry (thread, indented lines)."""

    def around(self, uuid: str) -> str:
        """The text of ``uuid``'s entry and what was shown for it since."""


@dataclass
class Harness:
    publisher: Publisher
    surface: Surface


class SlackSurface:
    """The channel as the Slack stand-in recorded it."""

    def __init__(self, slack: SlackEmulator) -> None:
        self.slack = slack

    def _top(self) -> list[Any]:
        return [m for m in self.slack.messages(CHANNEL) if not m.thread_ts or m.thread_ts == m.ts]

    def top_level(self) -> list[str]:
        return [str((m.metadata or {}).get("event_payload", {}).get("alert_uuid"))
                for m in self._top()]

    def _entry(self, uuid: str) -> Any:
        [entry] = [m for m in self._top()
                   if (m.metadata or {}).get("event_payload", {}).get("alert_uuid") == uuid]
        return entry

    def attached_under(self, first_uuid: str) -> str:
        entry = self._entry(first_uuid)
        return "\n".join(r.text for r in self.slack.replies(CHANNEL, entry.ts) if r.ts != entry.ts)

    def around(self, uuid: str) -> str:
        entry = self._entry(uuid)
        return f"{entry.text}\n{json.dumps(entry.blocks)}\n{self.attached_under(uuid)}"


class ConsoleSurface:
    """The terminal text, one line per entry; attached lines are indented under it."""

    def __init__(self, out: io.StringIO) -> None:
        self.out = out

    def _lines(self) -> list[str]:
        return self.out.getvalue().splitlines()

    def top_level(self) -> list[str]:
        # "<channel> <rule> <uuid[:8]>  posted|auto-closed …"; a duplicate says "threaded".
        found = (re.search(r" (\S{8})  (posted|auto-closed)", line) for line in self._lines())
        return [UUIDS[m.group(1)] for m in found if m]

    def attached_under(self, first_uuid: str) -> str:
        return "\n".join(line for line in self._lines() if f"under {first_uuid[:8]}" in line)

    def around(self, uuid: str) -> str:
        lines = self._lines()
        start = next(i for i, line in enumerate(lines) if f" {uuid[:8]}  " in line)
        return "\n".join(lines[start:])


#: Console lines show the first eight characters of a uuid; these are distinct there.
UUIDS = {u[:8]: u for u in ("alert-01-new", "alert-02-again", "alert-03-first",
                            "alert-04-dup", "alert-05-closed", "alert-06-other")}


@pytest.fixture(params=["slack", "console"])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    if request.param == "slack":
        async with SlackEmulator.running() as slack:
            client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
            yield Harness(SlackPublisher(client, MemoryStore()), SlackSurface(slack))
    else:
        out = io.StringIO()
        console = Console(file=out, width=200, color_system=None, force_terminal=False)
        yield Harness(ConsolePublisher(console), ConsoleSurface(out))


def alert(uid: str) -> Alert:
    return Alert.from_hit({"kibana.alert.uuid": uid, "@timestamp": "2026-11-01T10:00:00Z",
                           "kibana.alert.rule.name": "GCP IAM Service Account Key Creation"})


def decision(uid: str, **changes: Any) -> Decision:
    text = f"Service account key created ({uid})"
    base = Decision(
        alert_uuid=uid, rule_id="gcp_sa_key_created", channel=CHANNEL, post=True,
        auto_close=False, close_reason=None, explanation="rule has no auto_close",
        severity="high", fields={"user.email": "alice@example.com"},
        message={"text": text,
                 "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]},
    )
    return replace(base, **changes)


async def test_a_new_alert_is_shown_once(harness: Harness) -> None:
    await harness.publisher.publish(alert("alert-01-new"), decision("alert-01-new"))
    assert harness.surface.top_level() == ["alert-01-new"]


async def test_publishing_the_same_alert_again_does_not_show_it_twice(harness: Harness) -> None:
    # What a retry after a crash or a re-read during the poll overlap does.
    for _ in range(3):
        await harness.publisher.publish(alert("alert-02-again"), decision("alert-02-again"))
    assert harness.surface.top_level() == ["alert-02-again"]


async def test_a_duplicate_is_attached_under_the_first_not_a_new_entry(harness: Harness) -> None:
    await harness.publisher.publish(alert("alert-03-first"), decision("alert-03-first"))
    duplicate = decision("alert-04-dup", post=False, duplicate_of="alert-03-first",
                         duplicate_count=2, fields={"user.email": "bob@example.com"})
    await harness.publisher.publish(alert("alert-04-dup"), duplicate)
    assert harness.surface.top_level() == ["alert-03-first"]
    assert "alert-04" in harness.surface.attached_under("alert-03-first")


async def test_a_correction_is_shown_where_the_alert_was_published(harness: Harness) -> None:
    closed = decision("alert-05-closed", auto_close=True, close_reason="expected_activity")
    await harness.publisher.publish(alert("alert-06-other"), decision("alert-06-other"))
    await harness.publisher.publish(alert("alert-05-closed"), closed)
    note = "auto-close failed, alert left open: SIEM answered 503"
    await harness.publisher.correct(alert("alert-05-closed"), closed, note)
    assert note in harness.surface.around("alert-05-closed")
    assert note not in harness.surface.around("alert-06-other").split("alert-05")[0]
    assert harness.surface.top_level() == ["alert-06-other", "alert-05-closed"]
