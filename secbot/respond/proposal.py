"""A proposed response action (one record in Redis) and its approval message.

Buttons are a contract (DESIGN.md §13): ``secbot_approve`` / ``secbot_deny`` on the proposal,
``secbot_undo`` after it ran; each button's ``value`` is the proposal id.

``state``: ``posting`` (the approval message is being sent; a crash here posts it again —
twice is better than never), ``proposed``, ``running``, ``done``, ``failed`` (the buttons stay:
an approver may try again), ``denied``, ``undone``.

A ``running`` proposal carries a ``deadline`` (UNIX seconds, the run's lease) and sits in the
``respond:running`` due queue until it ends; one found ``running`` past its deadline was left
by a replica that died mid-call (see :mod:`secbot.respond.running`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from secbot.domain.codec import decode, encode
from secbot.render import mrkdwn as md
from secbot.respond.calls import ACTIONS, UNDO

APPROVE, DENY, UNDO_ACTION = "secbot_approve", "secbot_deny", "secbot_undo"
KIND = "respond"
RUNNING_QUEUE = "respond:running"  # running proposals by deadline (the sweep's queue)


@dataclass(frozen=True)
class Proposal:
    id: str
    alert_uuid: str
    rule_id: str
    action: str
    label: str  # the target as people read it (host name, email, key name)
    ident: str  # the target as the API takes it (agent.id, login, key name)
    requested_by: str  # a Slack user id, or "rule"
    state: str = "posting"
    channel: str = ""
    ts: str = ""
    approver: str = ""
    auto: bool = False
    ref: str = ""  # the API's id for what it did (Kibana action id, Okta user id)
    note: str = ""
    alert_id: str = ""
    deadline: float = 0.0  # while running: when the run's lease ends (UNIX seconds)
    resumed: int = 0  # how often a run was taken over after its replica stopped

    def to_json(self) -> str:
        return encode(self)

    @classmethod
    def from_json(cls, text: str | None) -> Proposal | None:
        return decode(cls, text)

    @property
    def words(self) -> str:
        return ACTIONS[self.action][1]

    @property
    def target(self) -> str:
        shown = f"`{md.escape(self.label)}`"
        if self.ident != self.label:
            shown += f" (`{md.escape(self.ident)}`)"
        return shown

    @property
    def who(self) -> str:
        return "the rule" if self.requested_by == "rule" else f"<@{self.requested_by}>"


def message(p: Proposal, status: str, *, buttons: tuple[str, ...] = ()) -> dict[str, Any]:
    """The approval message: what, on what, who asked, the status line, the buttons."""
    head = f":shield: *Response action:* {p.words} {p.target} · requested by {p.who}"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": md.truncate(head, 2900)}},
        {"type": "context", "elements": [{"type": "mrkdwn",
                                          "text": md.truncate(status, md.FIELD_TEXT_MAX)}]},
    ]
    labels = {APPROVE: ("Approve", "primary"), DENY: ("Deny", "danger"),
              UNDO_ACTION: (f"Undo ({ACTIONS[ACTIONS[p.action][0]][1]})", None)}
    elements = []
    for action_id in buttons:
        if action_id == UNDO_ACTION and p.action not in UNDO:
            continue
        label, style = labels[action_id]
        button: dict[str, Any] = {"type": "button", "action_id": action_id, "value": p.id,
                                  "text": {"type": "plain_text", "text": label}}
        if style:
            button["style"] = style
        elements.append(button)
    if elements:
        blocks.append({"type": "actions", "block_id": "secbot_respond", "elements": elements})
    text = f"Response action: {p.words} {p.label} · {status}"
    return {"text": md.plain(text, 300), "blocks": blocks}
