"""Alert → Block Kit message. Pure: the same view always renders the same JSON.

Every string that carries alert data is escaped (mrkdwn) or sent as ``plain_text``, then cut to
Block Kit's limits, so ``<!channel>`` or ``<http://evil|x>`` in an alert renders inert.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jinja2 import Template

from secbot.domain.alert import Alert
from secbot.domain.enrichment import Enrichment
from secbot.render import mrkdwn as md
from secbot.render.enrichment_text import summarize_enrichment
from secbot.render.templates import TemplateProblem, render_template

SEVERITY_EMOJI = {
    "critical": ":red_circle:",
    "high": ":large_orange_circle:",
    "medium": ":large_yellow_circle:",
    "low": ":large_blue_circle:",
    "info": ":white_circle:",
}


@dataclass(frozen=True)
class RelatedLink:
    """A link SecBot built (Kibana base URL + a percent-encoded alert id); ``label`` is alert
    data and is escaped when shown."""

    url: str
    label: str


@dataclass(frozen=True)
class Related:
    """"Also open for this user/host in the last hour: 3 alerts (rules …)" and its links.

    ``text`` carries alert data (rule names) and is escaped; ``links`` follow it."""

    text: str
    links: tuple[RelatedLink, ...] = ()


@dataclass(frozen=True)
class AlertView:
    """Everything a message shows. ``title``/``rule_name`` come from the reviewed rule."""

    alert: Alert
    title: str
    rule_id: str | None
    severity: str
    fields: Mapping[str, Any]
    enrichments: Mapping[str, Enrichment]
    status_line: str
    runbook: str | None = None
    title_template: Template | None = None
    body_template: Template | None = None
    notes: tuple[str, ...] = ()
    extra_context: Mapping[str, Any] = field(default_factory=dict)
    related: Related | None = None
    #: "Escalated · … · why" (issue 13): shown under the severity line, never cut
    escalated: str | None = None


def _nonempty(text: str) -> str:
    # Slack rejects the whole message (invalid_blocks) for an empty text object, and alert
    # text can be all invisible characters, which escaping removes.
    return text if text.strip() else "—"


def _section(text: str) -> dict[str, Any]:
    return {
        "type": "section",
        "text": {
            "type": "mrkdwn",
            "text": _nonempty(md.truncate(text, md.SECTION_TEXT_MAX)),
            "verbatim": True,
        },
    }


def _context(texts: list[str]) -> dict[str, Any]:
    return {
        "type": "context",
        "elements": [
            {
                "type": "mrkdwn",
                "text": _nonempty(md.truncate(t, md.FIELD_TEXT_MAX)),
                "verbatim": True,
            }
            for t in texts[: md.CONTEXT_ELEMENTS_MAX]
        ],
    }


STATUS_BLOCK_ID = "secbot_status"


def status_block(line: str, *, trusted: bool = False) -> dict[str, Any]:
    """The status line, with a fixed ``block_id`` so a status change can replace just it.

    ``trusted`` lines are built by SecBot from Slack ids and fixed words (a ``<@U…>`` mention
    must stay a mention); anything else is escaped.
    """
    return {**_context([line if trusted else md.escape(line)]), "block_id": STATUS_BLOCK_ID}


def with_status(message: Mapping[str, Any], line: str, *, trusted: bool = False) -> dict[str, Any]:
    """``message`` with its status block replaced (or appended if it has none)."""
    blocks = [dict(b) for b in message.get("blocks", [])]
    new = status_block(line, trusted=trusted)
    for index, block in enumerate(blocks):
        if block.get("block_id") == STATUS_BLOCK_ID:
            blocks[index] = new
            break
    else:
        blocks.append(new)
    return {**message, "blocks": blocks}


def _template_context(view: AlertView) -> dict[str, Any]:
    return {
        "alert": view.alert.frozen,
        "field": view.alert.get_field,
        "fields": view.fields,
        "IncludedFields": view.fields,
        "enrichments": {n: e.data for n, e in view.enrichments.items() if e.available},
        "severity": view.severity,
        "rule_name": view.alert.rule_name,
        "uuid": view.alert.uuid,
        **view.extra_context,
    }


def _fields_block(fields: Mapping[str, Any]) -> list[dict[str, Any]]:
    items = [
        {
            "type": "mrkdwn",
            "verbatim": True,
            "text": md.truncate(f"*{md.escape(name)}*\n{md.escape(value)}", md.FIELD_TEXT_MAX),
        }
        for name, value in fields.items()
    ]
    # Slack allows 10 fields per section: split, don't drop.
    return [
        {"type": "section", "fields": items[i : i + md.MAX_FIELDS]}
        for i in range(0, len(items), md.MAX_FIELDS)
    ]


def _custom_texts(view: AlertView) -> tuple[str | None, str | None, list[str]]:
    notes: list[str] = []
    rendered: list[str | None] = []
    context = _template_context(view)
    for template in (view.title_template, view.body_template):
        if template is None:
            rendered.append(None)
            continue
        try:
            rendered.append(render_template(template, context))
        except TemplateProblem as exc:
            rendered.append(None)
            notes.append(f"message template failed, default shown: {exc}")
    return rendered[0], rendered[1], notes


def _head(view: AlertView) -> list[dict[str, Any]]:
    emoji = SEVERITY_EMOJI.get(view.severity, ":white_circle:")
    return [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "emoji": True,
                "text": md.plain(view.title, md.HEADER_MAX),
            },
        },
        _section(
            f"{emoji} *{md.escape((view.severity or 'unknown').upper())}* · "
            f"SIEM rule: {md.escape(view.alert.rule_name or 'unknown')}"
        ),
        *([_context([f":rotating_light: {md.escape(view.escalated)}"])] if view.escalated else []),
    ]


def _middle(view: AlertView) -> list[dict[str, Any]]:
    """Title, body, fields, enrichment, runbook and notes: the part that may be cut."""
    title, body, notes = _custom_texts(view)
    blocks: list[dict[str, Any]] = []
    if title:
        blocks.append(_section(f"*{title}*"))
    if body:
        blocks.append(_section(body))
    elif md.escape(view.alert.reason).strip():
        blocks.append(_section(md.escape(view.alert.reason)))
    blocks.extend(_fields_block(view.fields))
    if view.enrichments:
        blocks.append(
            _section("\n".join(summarize_enrichment(e) for e in view.enrichments.values()))
        )
    if view.related is not None:
        blocks.append(_related_block(view.related))
    if view.runbook:
        blocks.append(_section(f"*Runbook*\n{md.escape(view.runbook)}"))
    for note in (*view.notes, *notes):
        blocks.append(_context([f":warning: {md.escape(note)}"]))
    return blocks


#: Characters that would end or split a Slack link: such a URL is shown as its label only.
_LINK_BREAKERS = frozenset("<>| \n\r\t")


def _related_block(related: Related) -> dict[str, Any]:
    """One context block: the escaped text, then each link (``<url|label>``, label escaped)."""
    links = [
        md.escape(link.label) if _LINK_BREAKERS & set(link.url) or "://" not in link.url
        else f"<{link.url}|{md.escape(link.label).replace('|', '¦')}>"
        for link in related.links
    ]
    return _context([" ".join([f":link: {md.escape(related.text)}", *links])])


def _tail(view: AlertView) -> list[dict[str, Any]]:
    """The status line and the alert id: never cut (a status edit replaces the status block)."""
    ident = f"alert {md.code(view.alert.uuid)}" + (
        f" · rule {md.code(view.rule_id)}" if view.rule_id else ""
    )
    return [status_block(view.status_line), _context([ident])]


def _fit(middle: list[dict[str, Any]], room: int) -> list[dict[str, Any]]:
    """``middle`` cut to ``room`` blocks, the last one saying how many were left out."""
    if len(middle) <= room:
        return middle
    kept = middle[: room - 1]
    left_out = len(middle) - len(kept)
    note = f":warning: {left_out} more blocks not shown (Slack's limit); the SIEM has the alert"
    return [*kept, _context([note])]


def render_message(view: AlertView) -> dict[str, Any]:
    """``{"text": fallback, "blocks": [...]}`` ready for ``chat.postMessage``.

    At most :data:`md.MAX_BLOCKS` blocks; the header, the status block and the alert id are
    always kept, whatever the rule's fields or notes add in between.
    """
    head, tail = _head(view), _tail(view)
    middle = _fit(_middle(view), md.MAX_BLOCKS - len(head) - len(tail))
    fallback = f"{view.severity.upper()} {view.title}: {view.alert.rule_name}"
    return {
        "text": md.truncate(md.escape(fallback), md.MESSAGE_TEXT_MAX),
        "blocks": [*head, *middle, *tail],
    }
