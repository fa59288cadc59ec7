"""SecBot: triage Elastic Security alerts from Slack."""

from secbot.domain.errors import SecBotError

__all__ = ["SecBotError", "__version__"]

__version__ = "0.1.0"
