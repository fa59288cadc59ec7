"""The composition root's own error."""

from __future__ import annotations

from secbot.domain.errors import SecBotError


class ConfigError(SecBotError):
    """Settings that validate alone but cannot run the service; names the variable."""
