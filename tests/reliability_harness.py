"""Shared helpers for the reliability tests (``tests/test_reliability*.py``).

``secbot run`` is started as a real process (``python -m secbot run``) against the in-repo Slack
and Elastic emulators, which run inside the test's event loop so the test can read their state
(every Web API call, every SIEM document) and inject faults. Each bot process logs to its own
file under the test's ``tmp_path``; failures quote the tail of those logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import redis.asyncio as aioredis
from shipped import SHIPPED_RUN_ENV

from secbot.store.base import AuditEntry
from secbot.store.redis import RedisStore
from secbot_emulators.elastic import ElasticEmulator
from secbot_emulators.slack import ApiCall, SlackEmulator

REPO = Path(__file__).resolve().parents[1]
INDEX = ".alerts-security.alerts-default"
SHARED_REDIS = "redis://127.0.0.1:6379/0"
TRIAGER, VIEWER = "U0TRIAGER", "U0VIEWER"
IDENTITY_CHANNEL = "C0IDENTITY"  # where rules/okta_login_new_country.yaml posts
EVENT_TYPE = "secbot_alert"
#: The shipped rules auto-close with this reason (one Kibana 9.2+ documents).
AUTO_CLOSE_REASON = "automated_closure"
#: An HR record of an active employee, as ``enriched_employee.*`` alert fields.
EMPLOYED = {"division": "Research", "employment_status": "active"}

T = TypeVar("T")


# --- small utilities ---------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unique_prefix(kind: str) -> str:
    """A Redis key prefix no other test (or engineer) uses: the shared Redis is never flushed."""
    return f"secbot-rel:{kind}:{os.getpid()}:{time.time_ns()}:"


async def wait_until(
    check: Callable[[], Awaitable[T | None]],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
    explain: Callable[[], str] | None = None,
) -> T:
    """Poll ``check`` until it returns something truthy; AssertionError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            detail = f"\n{explain()}" if explain else ""
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}{detail}")
        await asyncio.sleep(interval)


def utc_stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- alerts ------------------------------------------------------------------------------------


def okta_alert(uid: str, *, auto_close: bool, at: datetime | None = None) -> dict[str, Any]:
    """An alert for ``rules/okta_login_new_country.yaml``.

    ``auto_close`` puts ``source.ip`` in 192.0.2.0/24 (the corporate VPN) and the person's HR
    record on the alert (``enriched_employee.*``, what an ingest pipeline adds): the rule closes
    only for someone HR knows to be employed, and the real ``hr`` enricher of ``secbot run``
    reads those fields when no HRIS is configured. Otherwise the address is not the VPN's and
    the alert stays open. Each alert gets its own user.email so the rule's dedup never threads
    one under another.
    """
    octet = sum(map(ord, uid)) % 250 + 1
    employee = {"enriched_employee": EMPLOYED} if auto_close else {}
    return {
        **employee,
        "@timestamp": utc_stamp(at or datetime.now(UTC)),
        "kibana.alert.uuid": uid,
        "kibana.alert.workflow_status": "open",
        "kibana.alert.severity": "medium",
        "kibana.alert.rule.name": "Okta Sign-In From New Country",
        "user": {"email": f"{uid}@example.com"},
        "source": {
            "ip": f"192.0.2.{octet}" if auto_close else f"203.0.113.{octet}",
            "geo": {"country_name": "Netherlands"},
        },
    }


@dataclass
class AlertBook:
    """What a test injected: every uuid, and which of them the rule must auto-close."""

    uuids: list[str] = field(default_factory=list)
    auto_close: set[str] = field(default_factory=set)

    def add(
        self,
        es: ElasticEmulator,
        uids: Iterable[str],
        *,
        auto_close: Callable[[str], bool],
        at: datetime | None = None,
    ) -> list[str]:
        docs, added = [], []
        for uid in uids:
            closing = auto_close(uid)
            docs.append(okta_alert(uid, auto_close=closing, at=at))
            self.uuids.append(uid)
            added.append(uid)
            if closing:
                self.auto_close.add(uid)
        es.index_documents(INDEX, docs)
        return added

    @property
    def stay_open(self) -> list[str]:
        return [u for u in self.uuids if u not in self.auto_close]


def es_status(es: ElasticEmulator, uid: str) -> tuple[str | None, str | None]:
    """(workflow_status, workflow_reason) of an alert in the emulator."""
    doc = es.document(INDEX, uid) or {}
    return doc.get("kibana.alert.workflow_status"), doc.get("kibana.alert.workflow_reason")


# --- counting Slack posts ----------------------------------------------------------------------


def _metadata(call: ApiCall) -> Mapping[str, Any]:
    meta = call.params.get("metadata")
    if isinstance(meta, str):
        with contextlib.suppress(ValueError):
            meta = json.loads(meta)
    return meta if isinstance(meta, Mapping) else {}


def alert_post_counts(slack: SlackEmulator) -> Counter[str]:
    """Successful top-level ``chat.postMessage`` calls per alert uuid (from their metadata).

    Only calls Slack answered 200 with no error count: a 429/5xx answer posted nothing.
    """
    counts: Counter[str] = Counter()
    for call in slack.calls_to("chat.postMessage"):
        if call.status != 200 or call.error is not None or call.params.get("thread_ts"):
            continue
        meta = _metadata(call)
        payload = meta.get("event_payload") or {}
        if meta.get("event_type") == EVENT_TYPE and isinstance(payload, Mapping):
            counts[str(payload.get("alert_uuid"))] += 1
    return counts


def posted_ts(slack: SlackEmulator, channel: str = IDENTITY_CHANNEL) -> dict[str, str]:
    """alert uuid → ts of its top-level message in ``channel`` (from the emulator's timeline)."""
    found: dict[str, str] = {}
    for message in slack.messages(channel):
        meta = message.metadata or {}
        payload = meta.get("event_payload") or {}
        if meta.get("event_type") == EVENT_TYPE:
            found.setdefault(str(payload.get("alert_uuid")), message.ts)
    return found


@dataclass
class DeliveryReport:
    """Exactly-once bookkeeping: which uuids were lost, duplicated, or never injected."""

    injected: int
    lost: list[str]
    duplicated: dict[str, int]
    unexpected: list[str]

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.unexpected)

    def describe(self) -> str:
        dup = ", ".join(f"{u}×{n}" for u, n in sorted(self.duplicated.items()))
        return (
            f"injected={self.injected} lost={len(self.lost)} "
            f"duplicated={len(self.duplicated)}\n"
            f"  lost uuids: {self.lost[:50]}\n  duplicated: {dup[:2000]}\n"
            f"  posted but never injected: {self.unexpected[:50]}"
        )


def delivery_report(slack: SlackEmulator, expected: Iterable[str]) -> DeliveryReport:
    wanted = list(expected)
    counts = alert_post_counts(slack)
    return DeliveryReport(
        injected=len(wanted),
        lost=[u for u in wanted if counts[u] == 0],
        duplicated={u: n for u, n in counts.items() if n > 1},
        unexpected=sorted(set(counts) - set(wanted)),
    )


def assert_exactly_once(slack: SlackEmulator, expected: Iterable[str], context: str = "") -> None:
    report = delivery_report(slack, expected)
    assert report.ok, f"exactly-once violated {context}: {report.describe()}"


async def all_posted(slack: SlackEmulator, expected: Iterable[str]) -> bool:
    counts = alert_post_counts(slack)
    return all(counts[u] for u in expected)


@contextlib.contextmanager
def kill_inside_slack(
    slack: SlackEmulator, method: str, nth: int, victim: BotProcess
) -> Iterator[list[int]]:
    """SIGKILL ``victim`` from inside the emulator while it handles the ``nth`` successful
    ``method`` call from now: Slack has done the work (e.g. the message exists) but the bot
    never sees the answer. Yields a list that gets the call number when it fired."""
    table = slack.web.methods.table
    handler, kind = table[method]
    seen = 0
    fired: list[int] = []

    def wrapped(params: Any) -> dict[str, Any]:
        nonlocal seen
        result = handler(params)
        if result.get("ok") and not fired:
            seen += 1
            if seen >= nth:
                fired.append(seen)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(victim.pid, signal.SIGKILL)
        return result

    table[method] = (wrapped, kind)
    try:
        yield fired
    finally:
        table[method] = (handler, kind)


# --- audit ---------------------------------------------------------------------------------------


async def audit_by_alert(redis_url: str, prefix: str) -> dict[str, list[AuditEntry]]:
    """Every audit entry under ``prefix``, grouped by alert uuid (oldest first)."""
    store = RedisStore.from_url(redis_url, prefix)
    try:
        entries = await store.read_audit(None, limit=1_000_000)
    finally:
        await store.close()
    grouped: dict[str, list[AuditEntry]] = {}
    for entry in entries:
        grouped.setdefault(entry.alert_uuid, []).append(entry)
    return grouped


def check_auto_close(
    es: ElasticEmulator, book: AlertBook, audit: Mapping[str, list[AuditEntry]]
) -> list[str]:
    """Problems with the SIEM state: auto-close alerts closed once by secbot, others open."""
    problems = []
    for uid in book.uuids:
        status, reason = es_status(es, uid)
        closes = [e for e in audit.get(uid, []) if e.action == "closed" and e.actor == "secbot"]
        if uid in book.auto_close:
            if (status, reason) != ("closed", AUTO_CLOSE_REASON):
                problems.append(f"{uid}: auto-close alert is {status}/{reason}")
            if len(closes) != 1:
                problems.append(f"{uid}: {len(closes)} 'closed' audit entries by secbot")
        else:
            if status != "open":
                problems.append(f"{uid}: should stay open but is {status}/{reason}")
            if closes:
                problems.append(f"{uid}: audited as closed by secbot but must stay open")
    return problems


async def delete_prefix(redis_url: str, prefix: str) -> None:
    """Remove a test's keys (never FLUSHALL: the Redis on 6379 is shared)."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        batch: list[str] = []
        async for key in client.scan_iter(match=prefix + "*", count=1000):
            batch.append(key)
            if len(batch) >= 500:
                await client.delete(*batch)
                batch.clear()
        if batch:
            await client.delete(*batch)
    except (OSError, aioredis.RedisError):
        pass  # a private instance may already be gone
    finally:
        await client.aclose()


# --- bot processes -------------------------------------------------------------------------------


def bot_env(
    slack: SlackEmulator,
    es: ElasticEmulator,
    *,
    http_port: int,
    prefix: str,
    redis_url: str = SHARED_REDIS,
    **extra: str,
) -> dict[str, str]:
    """Environment for ``secbot run`` against the emulators; ``extra`` overrides (VAR=value).

    Pacing and flood digests are off so hundreds of alerts each get their own message quickly;
    the lease TTL is short so a SIGKILLed leader is replaced within seconds.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SECBOT_", "SLACK_"))}
    env.update(
        {
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_APP_TOKEN": slack.app_token,
            "SECBOT_SLACK_API_URL": slack.api_url,
            "SECBOT_SIEM": "elastic",
            "SECBOT_ELASTICSEARCH_URL": es.url,
            "SECBOT_KIBANA_URL": es.kibana_url,
            "SECBOT_DEFAULT_CHANNEL": "C0DEFAULT",
            "SECBOT_TRIAGERS": "S0TRIAGE",
            "SECBOT_POLL_INTERVAL": "0.3",
            "SECBOT_LEASE_TTL": "2",
            "SECBOT_SLACK_PACE": "0",
            "SECBOT_FLOOD_THRESHOLD": "0",
            "SECBOT_HTTP_PORT": str(http_port),
            **SHIPPED_RUN_ENV,
            "SECBOT_REDIS_URL": redis_url,
            "SECBOT_REDIS_PREFIX": prefix,
            "SECBOT_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


@dataclass
class BotProcess:
    """One ``python -m secbot run`` process and its /healthz port."""

    name: str
    port: int
    proc: asyncio.subprocess.Process
    log_path: Path
    started: float

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    async def health(self) -> tuple[int, dict[str, Any]] | None:
        """(status code, JSON body) of /healthz, or None if nothing answers."""
        try:
            async with httpx.AsyncClient(timeout=2.0) as http:
                response = await http.get(f"http://127.0.0.1:{self.port}/healthz")
            return response.status_code, response.json()
        except (httpx.HTTPError, ValueError):
            return None

    async def role(self) -> str | None:
        answer = await self.health()
        if answer is None:
            return None
        value = answer[1].get("checks", {}).get("role", {}).get("value")
        return str(value) if value is not None else None

    async def wait_healthy(self, timeout: float = 30.0) -> dict[str, Any]:
        async def ok() -> dict[str, Any] | None:
            answer = await self.health()
            return answer[1] if answer and answer[0] == 200 else None

        return await wait_until(
            ok, timeout=timeout, what=f"{self.name} /healthz 200", explain=self.log_tail
        )

    async def wait_role(self, role: str, timeout: float = 30.0) -> None:
        async def has() -> bool:
            return await self.role() == role

        await wait_until(
            has, timeout=timeout, what=f"{self.name} role={role}", explain=self.log_tail
        )

    async def kill(self) -> None:
        """SIGKILL (kill -9): no drain, no lease release, nothing flushed."""
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def terminate(self, timeout: float = 30.0) -> tuple[int | None, float]:
        """SIGTERM; (exit code, seconds until exit). None if it had to be killed."""
        begin = time.monotonic()
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
        try:
            code: int | None = await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            await self.kill()
            code = None
        return code, time.monotonic() - begin

    def log_events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_text().splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
        return out

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        # The Elasticsearch client logs every request at INFO; they would bury the story.
        tail = [line for line in self.log_text().splitlines() if " [status:" not in line]
        tail = tail[-lines:]
        return f"--- last {len(tail)} log lines of {self.name} ({self.log_path}) ---\n" + "\n".join(
            tail
        )


async def start_bot(env: Mapping[str, str], workdir: Path, name: str) -> BotProcess:
    """Start ``python -m secbot run`` with ``env``; stdout and stderr go to ``<name>.log``."""
    log_path = workdir / f"{name}.log"
    with log_path.open("ab") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "secbot",
            "run",
            env=dict(env),
            cwd=workdir,
            stdout=log,
            stderr=log,
            start_new_session=True,  # a Ctrl-C on pytest must not hit the bot first
        )
    return BotProcess(name, int(env["SECBOT_HTTP_PORT"]), proc, log_path, time.monotonic())


@contextlib.asynccontextmanager
async def reaped(*bots: BotProcess) -> Any:
    """Make sure no bot process outlives the test, whatever happens."""
    try:
        yield
    finally:
        for bot in bots:
            await bot.kill()


# --- a private Redis --------------------------------------------------------------------------


class PrivateRedis:
    """A throw-away ``redis-server`` on its own port: no persistence, so a restart is EMPTY."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.workdir = workdir
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @staticmethod
    def available() -> bool:
        return shutil.which("redis-server") is not None

    async def start(self) -> None:
        log = (self.workdir / f"redis-{self.port}.log").open("ab")
        with log:
            self.proc = await asyncio.create_subprocess_exec(
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                cwd=self.workdir,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

        async def answers() -> bool:
            client = aioredis.Redis.from_url(self.url, socket_connect_timeout=0.5)
            try:
                return bool(await client.ping())
            except (OSError, aioredis.RedisError):
                return False
            finally:
                await client.aclose()

        await wait_until(answers, timeout=10, what=f"redis-server on :{self.port}")

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()
        self.proc = None
