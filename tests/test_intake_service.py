"""Push intake through the real service: ``secbot run`` processes against the Slack and Elastic
stand-ins (tests/reliability_harness.py), pushed to over HTTP like Kibana or ``secbot send``.

- a pushed alert is in Slack well under a second, and the poller finding the same alert in
  Elasticsearch later (or earlier) does not post it again;
- ``kill -9`` after the 202 and before the post → posted exactly once by the next process;
- ``secbot send`` from a pipe: exit 0 and posted; a wrong token exits 1; no token exits 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from reliability_harness import (
    INDEX,
    REPO,
    BotProcess,
    alert_post_counts,
    bot_env,
    delete_prefix,
    free_port,
    okta_alert,
    reaped,
    start_bot,
    unique_prefix,
    wait_until,
)

from secbot_emulators.elastic import ElasticEmulator
from secbot_emulators.slack import SlackEmulator

pytestmark = pytest.mark.slow

TOKEN = "push-token-elastic-0123456789"
SHARED_REDIS = "redis://127.0.0.1:6379/0"


@contextlib.asynccontextmanager
async def pushing_bot(tmp_path: Path) -> AsyncIterator[tuple[Any, ...]]:
    """Emulators + the env of a bot with its intake on a free port (not started yet)."""
    prefix = unique_prefix("intake-svc")
    async with SlackEmulator.running(ack_timeout=1.0) as slack, ElasticEmulator.running() as es:
        port = free_port()
        env = bot_env(slack, es, http_port=free_port(), prefix=prefix,
                      SECBOT_INTAKE_PORT=str(port), SECBOT_INTAKE_TOKENS=f"elastic={TOKEN}",
                      SECBOT_SOURCES_DIR=str(REPO / "sources"))
        try:
            yield slack, es, env, f"http://127.0.0.1:{port}"
        finally:
            await delete_prefix(SHARED_REDIS, prefix)


async def push(url: str, alerts: list[dict[str, Any]]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5) as http:
        return await http.post(f"{url}/v1/alerts/elastic", json=alerts,
                               headers={"Authorization": f"Bearer {TOKEN}"})


async def posted(slack: SlackEmulator, uid: str) -> bool:
    return alert_post_counts(slack)[uid] >= 1


async def test_push_is_shown_fast_and_not_reposted_when_polled(tmp_path: Path) -> None:
    async with pushing_bot(tmp_path) as (slack, es, env, url):
        bot = await start_bot(env, tmp_path, "push")
        async with reaped(bot):
            await bot.wait_healthy()
            pushed = okta_alert("push-first", auto_close=False)
            began = time.monotonic()
            answer = await push(url, [pushed])
            assert (answer.status_code, answer.json()) == (202, {"accepted": 1})
            await wait_until(lambda: posted(slack, "push-first"), timeout=5, what="push posted",
                             interval=0.01, explain=bot.log_tail)
            latency = time.monotonic() - began
            # The poller now finds the same alert in Elasticsearch: it must not post it again.
            es.index_documents(INDEX, [pushed])
            # And the reverse order: polled first, pushed afterwards.
            polled = okta_alert("poll-first", auto_close=False)
            es.index_documents(INDEX, [polled])
            await wait_until(lambda: posted(slack, "poll-first"), timeout=10, what="poll posted",
                             explain=bot.log_tail)
            assert (await push(url, [polled])).status_code == 202
            await asyncio.sleep(2.0)  # several polls and the consumer have had their chance
            counts = alert_post_counts(slack)
            assert (counts["push-first"], counts["poll-first"]) == (1, 1), bot.log_tail()
            assert latency < 1.0, f"push → Slack took {latency:.3f}s"


@contextlib.contextmanager
def kill_before_post(slack: SlackEmulator, victim: BotProcess) -> Iterator[list[int]]:
    """SIGKILL ``victim`` when it first calls chat.postMessage, before Slack posts anything."""
    table = slack.web.methods.table
    handler, kind = table["chat.postMessage"]
    fired: list[int] = []

    def wrapped(params: Any) -> dict[str, Any]:
        if not fired:
            fired.append(1)
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim.pid, signal.SIGKILL)
            return {"ok": False, "error": "internal_error"}
        return handler(params)

    table["chat.postMessage"] = (wrapped, kind)
    try:
        yield fired
    finally:
        table["chat.postMessage"] = (handler, kind)


async def test_kill_9_after_202_before_post_is_posted_once_after_restart(
    tmp_path: Path,
) -> None:
    async with pushing_bot(tmp_path) as (slack, _es, env, url):
        first = await start_bot(env, tmp_path, "victim")
        async with reaped(first):
            await first.wait_healthy()
            with kill_before_post(slack, first) as fired:
                answer = await push(url, [okta_alert(f"k9p-{i}", auto_close=False)
                                          for i in range(3)])
                assert answer.status_code == 202
                await asyncio.wait_for(first.proc.wait(), timeout=10)
            assert fired, "the bot never tried to post"
        assert sum(alert_post_counts(slack).values()) == 0
        second = await start_bot(env, tmp_path, "heir")
        async with reaped(second):
            wanted = [f"k9p-{i}" for i in range(3)]

            async def all_there() -> bool:
                counts = alert_post_counts(slack)
                return all(counts[u] for u in wanted)

            await wait_until(all_there, timeout=30, what="pushed alerts posted after restart",
                             explain=second.log_tail)
            await asyncio.sleep(1.5)
            counts = alert_post_counts(slack)
            assert [counts[u] for u in wanted] == [1, 1, 1], second.log_tail()


def send(args: list[str], stdin: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SECBOT_")}
    return subprocess.run([sys.executable, "-m", "secbot", "send", *args], input=stdin,
                          capture_output=True, text=True, env={**clean, **env}, timeout=60)


async def test_secbot_send_from_a_pipe(tmp_path: Path) -> None:
    async with pushing_bot(tmp_path) as (slack, _es, env, url):
        bot = await start_bot(env, tmp_path, "send")
        async with reaped(bot):
            await bot.wait_healthy()
            lines = "".join(json.dumps(okta_alert(f"pipe-{i}", auto_close=False)) + "\n"
                            for i in range(3))
            ok = await asyncio.to_thread(send, ["--source", "elastic"], lines,
                                         SECBOT_INTAKE_URL=url, SECBOT_INTAKE_TOKEN=TOKEN)
            assert ok.returncode == 0, ok.stderr
            assert "3 alerts accepted" in ok.stdout
            await wait_until(
                lambda: _all_posted(slack, [f"pipe-{i}" for i in range(3)]),
                timeout=10, what="piped alerts posted", explain=bot.log_tail)
            wrong = await asyncio.to_thread(send, ["--source", "elastic"], lines,
                                            SECBOT_INTAKE_URL=url, SECBOT_INTAKE_TOKEN="nope")
            assert wrong.returncode == 1 and "401" in wrong.stderr
            assert TOKEN not in bot.log_text() and "nope" not in bot.log_text()
            bad = await asyncio.to_thread(send, ["--source", "elastic"], '[{"x": 1}]',
                                          SECBOT_INTAKE_URL=url, SECBOT_INTAKE_TOKEN=TOKEN)
            assert bad.returncode == 1 and "kibana.alert.uuid" in bad.stderr
    missing = await asyncio.to_thread(send, ["--source", "elastic"], lines,
                                      SECBOT_INTAKE_URL=url)
    assert missing.returncode == 2 and "SECBOT_INTAKE_TOKEN" in missing.stderr
    garbage = await asyncio.to_thread(send, ["--source", "elastic"], "{not json\n",
                                      SECBOT_INTAKE_URL=url, SECBOT_INTAKE_TOKEN=TOKEN)
    assert garbage.returncode == 2


async def _all_posted(slack: SlackEmulator, uids: list[str]) -> bool:
    counts = alert_post_counts(slack)
    return all(counts[u] for u in uids)
