"""The Slack side of SecBot: posting alerts, emoji triage, @-mention commands."""
