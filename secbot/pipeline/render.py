"""Stage 6, render: the Slack message for a decided alert, which never fails."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import structlog

from secbot.render import mrkdwn as md
from secbot.render.blocks import AlertView, render_message, status_block

log = structlog.stdlib.get_logger(__name__)


def safe_render(view: AlertView) -> dict[str, Any]:
    """The message for ``view``; never raises.

    Rendering is pure, so an exception here would recur on every retry and block the poller
    on this alert forever. Instead: the message without the parts built from alert data
    (fields, enrichments, templates), and if even that fails, a fixed message with the uuid.
    """
    try:
        return render_message(view)
    except Exception as exc:
        log.exception("rendering alert %r failed; sending a reduced message", view.alert.id)
        note = f"message shown in reduced form: rendering failed ({type(exc).__name__})"
    reduced = replace(
        view,
        fields={},
        enrichments={},
        title_template=None,
        body_template=None,
        notes=(*view.notes, note),
    )
    try:
        return render_message(reduced)
    except Exception:
        log.exception("reduced rendering of alert %r failed too", view.alert.id)
    text = md.truncate(
        md.escape(
            f"{view.title}: SecBot could not render alert {view.alert.id}; see the SIEM. {note}"
        ),
        md.SECTION_TEXT_MAX,
    )
    return {
        "text": md.truncate(text, md.MESSAGE_TEXT_MAX),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text, "verbatim": True}},
            status_block(view.status_line),
        ],
    }
