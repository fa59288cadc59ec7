"""One log system (issue 9): every line is one JSON object, and no secret reaches a log line.

Three levels: ``redact()`` over each secret shape; the real logging set-up in this process
(library records, structlog calls, warnings, tracebacks); and ``secbot run`` as a process
against the Slack and Elastic stand-ins, provoked into logging library errors that carry a
URL with a password in it.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from pydantic import SecretStr
from test_run_process import INDEX, free_port, run_env, start_run, wait_for

from secbot.domain.secrets import REDACTED, forget_secrets, redact, register_secret
from secbot.runtime.logs import configure_logging, register_settings_secrets
from secbot.runtime.settings import Settings
from secbot_emulators.elastic import ElasticEmulator
from secbot_emulators.slack import SlackEmulator

# --- redact() ----------------------------------------------------------------------------

SHAPES = [
    # (text, the secret part that must go, what must stay)
    ("token xoxb-1234567890-0987654321-AbCdEfGhIj", "1234567890-0987654321", "xoxb-"),
    ("user token xoxp-11-22-33-abcdef", "11-22-33-abcdef", "xoxp-"),
    ("app token xapp-1-A0SECBOT-123-deadbeef", "A0SECBOT-123-deadbeef", "xapp-"),
    ("refresh xoxe.xoxp-1-Mi0yLTE and xoxe-1-My0xLTI", "Mi0yLTE", "xoxe.xoxp-"),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig", "eyJhbGciOiJIUzI1NiJ9", "Bearer"),
    ("{'authorization': 'ApiKey ZXMta2V5OnNlY3JldA=='}", "ZXMta2V5OnNlY3JldA==", "ApiKey"),
    ('"Authorization": "Basic dXNlcjpodW50ZXIy"', "dXNlcjpodW50ZXIy", "Basic"),
    ("Authorization: Token token=pd-secret-token", "pd-secret-token", "Token"),
    ("Authorization: GenieKey 0c0ffee0-1234", "0c0ffee0-1234", "GenieKey"),
    ("headers={'x-api-key': 'vt-key-123', 'Key': 'abuse-key-456'}", "vt-key-123", "x-api-key"),
    ("headers={'x-api-key': 'vt-key-123', 'Key': 'abuse-key-456'}", "abuse-key-456", "'Key'"),
    ("GET https://rdap.example/v1?ip=10.0.0.1&key=AIzaSyD-123", "AIzaSyD-123", "ip=10.0.0.1"),
    ("GET /search?api_key=query-secret&q=x", "query-secret", "q=x"),
    ("wss://slack.example/link/?ticket=tkt-987&app_id=A1", "tkt-987", "app_id=A1"),
    ("password=hunter22; client_secret: cs-1", "hunter22", "password="),
    ("password=hunter22; client_secret: cs-1", "cs-1", "client_secret"),
    ("Error connecting to redis://:redis-pw@10.0.0.5:6379/0", "redis-pw", "10.0.0.5:6379"),
    ("GET https://alice:s3cr3t@kibana.example/api failed", "s3cr3t", "kibana.example/api"),
    ("GET https://alice:s3cr3t@kibana.example/api failed", "alice", "https://"),
]


@pytest.mark.parametrize(("text", "secret", "kept"), SHAPES)
def test_redact_masks_each_secret_shape(text: str, secret: str, kept: str) -> None:
    masked = redact(text)
    assert secret not in masked
    assert REDACTED in masked
    assert kept in masked
    assert redact(masked) == masked  # idempotent: a second pass (logs, then Slack) is a no-op


@pytest.mark.parametrize(
    "text",
    [
        "Basic authentication failed",
        "Token expired, refreshing",
        "dedup key=rule:aws_root alert 7f3e",
        "SLACK_BOT_TOKEN: required (xoxb-…)",
        "polled 12 alerts from http://127.0.0.1:9200/.alerts-security.alerts-default",
    ],
)
def test_redact_leaves_ordinary_lines_alone(text: str) -> None:
    assert redact(text) == text


@pytest.fixture
def registry() -> Iterator[None]:
    forget_secrets()
    yield
    forget_secrets()


def test_registered_values_are_masked_exactly_and_url_encoded(registry: None) -> None:
    register_secret("plain-looking value/42", "ab", None)
    line = "sent plain-looking value/42 as plain-looking%20value%2F42 or plain-looking+value%2F42"
    assert redact(line) == f"sent {REDACTED} as {REDACTED} or {REDACTED}"
    assert redact("ab stays: too short to be a secret") == "ab stays: too short to be a secret"


def test_settings_secrets_are_registered(registry: None) -> None:
    settings = Settings(
        slack_bot_token=SecretStr("opaque-bot-credential"),
        hris_token=SecretStr("hris-opaque-credential"),
        redis_url="redis://:redis-opaque-password@10.0.0.5:6379/0",
    )
    assert register_settings_secrets(settings) == 3
    assert redact("hris said hris-opaque-credential") == f"hris said {REDACTED}"
    assert redact("AUTH redis-opaque-password refused") == f"AUTH {REDACTED} refused"


# --- the logging set-up in this process ---------------------------------------------------


@pytest.fixture
def log_stream(registry: None) -> Iterator[io.StringIO]:
    """``configure_logging`` onto a buffer; everything it changed is put back afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, sys.excepthook, threading.excepthook,
             sys.unraisablehook)
    stream = io.StringIO()
    configure_logging("DEBUG", stream=stream)
    try:
        yield stream
    finally:
        root.handlers[:], level, sys.excepthook, threading.excepthook, sys.unraisablehook = saved
        root.setLevel(level)
        logging.captureWarnings(False)
        structlog.reset_defaults()


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert all(isinstance(entry, dict) for entry in entries)
    return entries


def test_library_and_own_records_are_json_with_fields_and_no_secret(
    log_stream: io.StringIO,
) -> None:
    register_secret("opaque-registered-credential")
    own = structlog.stdlib.get_logger("secbot.intake.poller")
    own.warning("store checkpoint %s behind memory; continuing from %s", "t1", "t2")
    own.info("poll_failed", error="token=opaque-registered-credential", kind="siem", alerts=3,
             headers={"Authorization": "ApiKey abc123"}, api_key="never-shown")
    logging.getLogger("elastic_transport.transport").info(
        "POST %s [status:%s]", "https://elastic:es-pw@es.example/_search", 503
    )
    logging.getLogger("slack_sdk.web").debug("headers: %r", {"Authorization": "Bearer xoxb-9-9-z"})
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("deprecated call with xapp-1-A1-2-x", DeprecationWarning, stacklevel=1)

    text = log_stream.getvalue()
    entries = _lines(log_stream)
    for secret in ("opaque-registered-credential", "abc123", "never-shown", "es-pw", "xoxb-9",
                   "A1-2-x"):
        assert secret not in text
    first, fields, library, slack, warning = entries
    assert first["event"] == "store checkpoint t1 behind memory; continuing from t2"
    assert first["level"] == "warning" and first["logger"] == "secbot.intake.poller"
    assert fields["event"] == "poll_failed" and fields["alerts"] == 3 and fields["kind"] == "siem"
    assert fields["api_key"] == REDACTED and fields["headers"] == {"Authorization": REDACTED}
    assert library["logger"] == "elastic_transport.transport"
    assert library["event"] == f"POST https://{REDACTED}@es.example/_search [status:503]"
    assert slack["level"] == "debug" and "Bearer" in slack["event"]
    assert warning["logger"] == "py.warnings" and "DeprecationWarning" in warning["event"]
    assert all("timestamp" in entry for entry in entries)


def test_exceptions_keep_their_traceback_in_a_field(log_stream: io.StringIO) -> None:
    log = structlog.stdlib.get_logger("secbot.pipeline.pipeline")
    try:
        raise ValueError("Kibana at http://kibana:kb-pw@kibana.local unreachable")
    except ValueError:
        log.exception("rendering alert %r failed; sending a reduced message", "a-1")
    try:
        raise KeyError("boom")
    except KeyError:
        logging.getLogger("asyncio").error("Task exception was never retrieved", exc_info=True)
    sys.excepthook(RuntimeError, RuntimeError("uncaught with xoxp-1-2-3"), None)

    own, foreign, uncaught = _lines(log_stream)
    assert own["event"] == "rendering alert 'a-1' failed; sending a reduced message"
    assert own["exception"].startswith("Traceback (most recent call last):")
    assert "ValueError: Kibana at http://[REDACTED]@kibana.local" in own["exception"]
    assert "kb-pw" not in log_stream.getvalue()
    assert foreign["logger"] == "asyncio" and "KeyError: 'boom'" in foreign["exception"]
    assert uncaught["level"] == "critical" and uncaught["event"] == "uncaught exception"
    assert "RuntimeError: uncaught with xoxp-[REDACTED]" in uncaught["exception"]


# --- secbot run and secbot demo as processes ----------------------------------------------

ES_KEY = "ZXMta2V5LWlkOmVzLWtleS1zZWNyZXQtdmFsdWU="
KIBANA_KEY = "a2liYW5hLWtleS1zZWNyZXQtdmFsdWU="
KIBANA_PASSWORD = "kibana-userinfo-password"
REDIS_PASSWORD = "redis-userinfo-password"


async def _wait_for_text(path: Path, needle: str, timeout: float = 30.0) -> None:
    async def seen() -> bool:
        return needle in path.read_text(encoding="utf-8", errors="replace")

    try:
        await wait_for(seen, timeout=timeout)
    except AssertionError:
        tail = path.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise AssertionError(f"{needle!r} never logged; last output:\n{tail}") from None


async def test_run_writes_only_json_lines_and_no_secret(tmp_path: Path) -> None:
    port = free_port()
    output = tmp_path / "secbot.out"
    async with SlackEmulator.running() as slack, ElasticEmulator.running(api_key=ES_KEY) as es:
        env = run_env(
            slack,
            port,
            SECBOT_ELASTICSEARCH_URL=es.url,
            SECBOT_ELASTICSEARCH_API_KEY=ES_KEY,
            # Nothing listens there: the status change fails and its error names this URL.
            SECBOT_KIBANA_URL=f"http://secbot:{KIBANA_PASSWORD}@127.0.0.1:{free_port()}",
            SECBOT_KIBANA_API_KEY=KIBANA_KEY,
            # The local Redis has no password; AUTH with one on the default user still works.
            SECBOT_REDIS_URL=f"redis://:{REDIS_PASSWORD}@127.0.0.1:6379/0",
            SECBOT_TRIAGERS="U0TRIAGER",
            SECBOT_LOG_LEVEL="DEBUG",  # every library's chattiest output, request dumps included
        )
        with output.open("wb") as sink:  # a file, not a pipe: DEBUG output would fill a pipe
            proc = await start_run(env, tmp_path, sink.fileno())
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:

                async def ready() -> bool:
                    try:
                        return (await http.get("/healthz")).status_code == 200
                    except httpx.TransportError:
                        return False

                await wait_for(ready)
            alert = {"@timestamp": "2026-11-01T10:00:00Z", "kibana.alert.uuid": "log-1",
                     "kibana.alert.workflow_status": "open", "kibana.alert.rule.name": "Odd"}
            es.index_documents(INDEX, [alert])

            async def posted() -> bool:
                return bool(slack.messages("C0DEFAULT"))

            await wait_for(posted)
            es.fail_next(2, status=503)  # elastic_transport and the node pool log the 5xx
            await _wait_for_text(output, "status:503")
            slack.user_reacts("U0TRIAGER", "eyes", "C0DEFAULT", slack.messages("C0DEFAULT")[0].ts)
            await _wait_for_text(output, "Kibana at http://")
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), timeout=30)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    text = output.read_text(encoding="utf-8")
    assert code == 0, text[-3000:]
    entries = []
    for line in text.splitlines():
        entry = json.loads(line)  # every line, not only those that start with "{"
        assert isinstance(entry, dict) and "event" in entry and "level" in entry, line
        entries.append(entry)
    loggers = {entry.get("logger") for entry in entries}
    assert {"secbot.runtime.service", "slack_bolt.AsyncApp", "elastic_transport.transport"
            } <= loggers
    assert any(entry["event"] == "stopped" for entry in entries)
    # The failed status change was logged, with the Kibana URL — minus its userinfo.
    assert f"http://{REDACTED}@127.0.0.1" in text
    for secret in (slack.bot_token, slack.app_token, ES_KEY, KIBANA_KEY, KIBANA_PASSWORD,
                   REDIS_PASSWORD):
        assert secret not in text


async def test_demo_writes_only_json_lines(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "secbot", "demo", "--port", str(free_port()), "--count", "3",
        "--duration", "4", "--rules", str(Path(__file__).resolve().parents[1] / "rules"),
        cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, output.decode()[-3000:]
    entries = [json.loads(line) for line in output.decode().splitlines()]
    assert entries and all(isinstance(entry, dict) for entry in entries)
    # The banner a newcomer needs is a log line too, still saying where to look.
    assert any(entry["event"].startswith("SecBot demo: open http://127.0.0.1:")
               for entry in entries)
