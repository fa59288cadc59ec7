"""SecBot: triage Elastic Security alerts from Slack."""

__version__ = "0.1.0"
