"""The one log system: every line the process writes is one JSON object, with no secret in it.

:func:`configure_logging` is the only place logging is set up, called by the CLI entry points
(never at import). SecBot's own modules log through ``structlog.stdlib.get_logger(__name__)``;
libraries (slack_sdk, slack_bolt, elasticsearch, elastic_transport, httpx, httpcore, aiohttp,
asyncio, urllib3, google-auth, …) log through the standard library. Both end in one root
handler whose :class:`structlog.stdlib.ProcessorFormatter` renders JSON, so a record from
either side looks the same: ``event``, ``level``, ``logger``, ``timestamp``, any structured
fields, and ``exception`` (the formatted traceback) when there is one. Python warnings, uncaught
exceptions (main thread, other threads, "exception ignored" at shutdown) are log records too.

Every event goes through :func:`redact_event` last, just before rendering: the message, every
field (nested too) and the exception text pass :func:`secbot.domain.secrets.redact`, and a field
whose *name* says it holds a credential is masked whatever its value.
"""

from __future__ import annotations

import io
import logging
import re
import sys
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import IO, Any
from urllib.parse import urlsplit

import structlog
from pydantic import BaseModel, SecretStr
from structlog.typing import EventDict, Processor, WrappedLogger

from secbot.domain.secrets import REDACTED, redact, register_secret

# A field named like one of these holds a credential, whatever it contains.
_SECRET_FIELD = re.compile(
    r"(?i)(?:.*[_-])?(?:authorization|api[_-]?key|apikey|token|secret|password|passwd|"
    r"credentials?|cookie)"
)
_MAX_DEPTH = 6


def _scrub(value: object, depth: int = 0) -> object:
    """A JSON-ready copy of ``value`` with every string redacted."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return redact(value)
    if depth < _MAX_DEPTH and isinstance(value, Mapping):
        return {
            str(k): REDACTED if _SECRET_FIELD.fullmatch(str(k)) else _scrub(v, depth + 1)
            for k, v in value.items()
        }
    if depth < _MAX_DEPTH and isinstance(value, list | tuple | set | frozenset):
        return [_scrub(item, depth + 1) for item in value]
    # What the JSON renderer would do with it anyway (repr), but redacted first.
    return redact(repr(value))


def redact_event(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: the message, every field and the exception text, redacted."""
    for key, value in list(event_dict.items()):
        if _SECRET_FIELD.fullmatch(key) and value is not None:
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _scrub(value)
    return event_dict


def _shared_processors() -> list[Processor]:
    """What both structlog calls and foreign (stdlib) records go through before rendering."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        # log.exception("x %r", y) from the stdlib era keeps rendering as before.
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]


def _formatter(json: bool) -> structlog.stdlib.ProcessorFormatter:
    renderer: Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.UnicodeDecoder(),
            redact_event,  # last before rendering: nothing added after it escapes redaction
            renderer,
        ],
    )


def configure_logging(
    level: str = "INFO", *, json: bool = True, stream: IO[str] | None = None
) -> None:
    """Route everything the process logs to one handler on ``stream`` (stderr) as JSON lines.

    Idempotent: calling it again (e.g. once settings give the level) replaces the handler.
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(_formatter(json))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Module-level loggers are created at import, before this runs: never cache them.
        cache_logger_on_first_use=False,
    )
    _install_exception_hooks()


_crash_log = structlog.stdlib.get_logger("secbot.crash")


def _log_uncaught(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    _crash_log.critical("uncaught exception", exc_info=(exc_type, exc, tb))


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    thread = args.thread.name if args.thread is not None else "?"
    if args.exc_value is None:
        _crash_log.critical("uncaught exception in thread %s: %s", thread, args.exc_type)
        return
    _crash_log.critical(
        "uncaught exception in thread %s",
        thread,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )


def _log_unraisable(args: Any) -> None:
    # sys.UnraisableHookArgs: "Exception ignored in: <coroutine …>" at shutdown or in __del__.
    what = args.err_msg or "exception ignored"
    exc_info = (args.exc_type, args.exc_value, args.exc_traceback) if args.exc_value else None
    _crash_log.error("%s: %r", what, args.object, exc_info=exc_info)


def _install_exception_hooks() -> None:
    # Typer installs its own (rich, multi-line) hook when the app starts; this runs later,
    # inside the command, so ours is the one Python calls.
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_thread_exception
    sys.unraisablehook = _log_unraisable


def _secret_values(value: object, depth: int = 0) -> list[str]:
    if isinstance(value, SecretStr):
        return [value.get_secret_value()]
    if isinstance(value, str):
        # A URL setting (SECBOT_REDIS_URL=redis://:pw@host) carries a secret that is not a
        # SecretStr: its password is registered too, for where it shows without the URL.
        try:
            password = urlsplit(value).password if "://" in value else None
        except ValueError:
            password = None
        return [password] if password else []
    if depth > _MAX_DEPTH:
        return []
    if isinstance(value, BaseModel):
        return [s for item in value.__dict__.values() for s in _secret_values(item, depth + 1)]
    if isinstance(value, Mapping):
        return [s for item in value.values() for s in _secret_values(item, depth + 1)]
    if isinstance(value, list | tuple):
        return [s for item in value for s in _secret_values(item, depth + 1)]
    return []


def register_settings_secrets(settings: BaseModel) -> int:
    """Register every ``SecretStr`` value in ``settings`` (nested too), and every password in a
    URL setting, for exact-value redaction.

    Returns how many values were found (not all are registered: see ``MIN_SECRET_LENGTH``).
    """
    values = _secret_values(settings)
    register_secret(*values)
    return len(values)


class LogLineWriter(io.StringIO):
    """A text stream whose every line becomes one log event (for a rich ``Console``).

    A ``StringIO`` only to be a typed ``IO[str]``: nothing is kept in its buffer.
    """

    def __init__(self, name: str) -> None:
        super().__init__()
        self._log = structlog.stdlib.get_logger(name)
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            if line.strip():
                self._log.info(line.rstrip())
        return len(text)

    def flush(self) -> None:
        if self._pending.strip():
            self._log.info(self._pending.rstrip())
        self._pending = ""


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """The project's logger: ``structlog.stdlib.get_logger`` (also fine to call directly)."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger


__all__ = [
    "LogLineWriter",
    "configure_logging",
    "get_logger",
    "redact_event",
    "register_settings_secrets",
]
