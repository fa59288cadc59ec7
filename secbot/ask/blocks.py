"""Block Kit for the DM question, its answered form and the justification modal.

Action ids are a contract (DESIGN.md §13): ``secbot_ask_yes`` / ``secbot_ask_no``, each button's
``value`` the alert uuid. The question is rule text rendered with alert data, so it is escaped
like every other alert-derived string (DESIGN.md §8).
"""

from __future__ import annotations

import json
from typing import Any

from secbot.render import mrkdwn as md

ASK_YES = "secbot_ask_yes"
ASK_NO = "secbot_ask_no"
ASK_EVENT = "secbot_ask"  # message metadata: finds a DM sent before a crash
JUSTIFY_VIEW = "secbot_ask_justify"  # the modal's callback_id
JUSTIFY_BLOCK, JUSTIFY_INPUT = "justification", "text"
LABELS = {"yes": "Yes, this was me", "no": "No, it wasn't"}


def question_message(uuid: str, question: str, rule_name: str) -> dict[str, Any]:
    """The DM: the question, the two buttons, and metadata naming the alert."""
    text = md.truncate(md.escape(question), md.SECTION_TEXT_MAX)
    return {
        "text": md.plain(f"SecBot asks: {question}", 300),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text, "verbatim": True}},
            {"type": "context", "elements": [{
                "type": "mrkdwn", "verbatim": True,
                "text": md.truncate(f"SecBot · {md.escape(rule_name)} · alert `{md.escape(uuid)}`",
                                    md.FIELD_TEXT_MAX)}]},
            {"type": "actions", "block_id": "secbot_ask", "elements": [
                _button(ASK_YES, LABELS["yes"], uuid, "primary"),
                _button(ASK_NO, LABELS["no"], uuid, "danger"),
            ]},
        ],
        "metadata": {"event_type": ASK_EVENT, "event_payload": {"alert_uuid": uuid}},
    }


def answered_message(question: str, outcome: str) -> dict[str, Any]:
    """The DM once answered (or timed out): the buttons are gone, the outcome is said."""
    text = md.truncate(md.escape(question), md.SECTION_TEXT_MAX)
    return {
        "text": md.plain(f"{question} · {outcome}", 300),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text, "verbatim": True}},
            {"type": "context", "elements": [
                {"type": "mrkdwn", "text": md.truncate(outcome, md.FIELD_TEXT_MAX)}]},
        ],
    }


def justification_view(uuid: str, answer: str) -> dict[str, Any]:
    """The modal: an optional text, the alert and the answer in ``private_metadata``."""
    return {
        "type": "modal",
        "callback_id": JUSTIFY_VIEW,
        "private_metadata": json.dumps({"alert_uuid": uuid, "answer": answer}),
        "title": {"type": "plain_text", "text": "Your answer"},
        "submit": {"type": "plain_text", "text": "Send"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {"type": "section", "text": {"type": "plain_text", "text": LABELS[answer]}},
            {"type": "input", "block_id": JUSTIFY_BLOCK, "optional": True,
             "label": {"type": "plain_text", "text": "Anything the security team should know?"},
             "element": {"type": "plain_text_input", "action_id": JUSTIFY_INPUT,
                         "multiline": True, "max_length": 2000}},
        ],
    }


def _button(action_id: str, label: str, value: str, style: str) -> dict[str, Any]:
    return {"type": "button", "action_id": action_id, "value": value, "style": style,
            "text": {"type": "plain_text", "text": label}}
