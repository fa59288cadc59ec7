"""Block Kit rendering: escaping, limits, templates and the default message's content."""

from __future__ import annotations

from typing import Any

import pytest

from secbot.domain.alert import Alert
from secbot.domain.enrichment import Enrichment
from secbot.render import mrkdwn as md
from secbot.render.blocks import AlertView, render_message
from secbot.render.templates import compile_template


def view(**overrides: Any) -> AlertView:
    alert = Alert.from_hit(
        {
            "kibana.alert.uuid": "uuid-1",
            "kibana.alert.rule.name": "SIEM rule",
            "kibana.alert.reason": "why",
        }
    )
    base: dict[str, Any] = dict(
        alert=alert,
        title="Rule title",
        rule_id="r1",
        severity="high",
        fields={"user.email": "a@example.com"},
        enrichments={},
        status_line="Open · rule has no auto_close",
    )
    base.update(overrides)
    return AlertView(**base)


def texts(message: dict[str, Any]) -> list[str]:
    out = [message["text"]]
    for block in message["blocks"]:
        if isinstance(block.get("text"), dict):
            out.append(block["text"]["text"])
        out.extend(f["text"] for f in block.get("fields", []))
        out.extend(e["text"] for e in block.get("elements", []))
    return out


def test_default_message_shows_what_design_requires() -> None:
    enrichment = Enrichment.unavailable("gcp_project", "timeout after 5s")
    joined = "\n".join(texts(render_message(view(enrichments={"gcp_project": enrichment}))))
    for expected in (
        "Rule title",
        "SIEM rule",
        "HIGH",
        "user.email",
        "a@example.com",
        "gcp_project",
        "unavailable: timeout after 5s",
        "Open",
        "uuid-1",
    ):
        assert expected in joined, expected


def test_escaping_happens_before_truncation_and_limits_hold() -> None:
    huge = "&" * 5000 + "<!here>"
    message = render_message(view(fields={f"f{i}": huge for i in range(25)}, title=huge))
    for block in message["blocks"]:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= md.HEADER_MAX
        if isinstance(block.get("text"), dict):
            assert len(block["text"]["text"]) <= md.SECTION_TEXT_MAX
        assert len(block.get("fields", [])) <= md.MAX_FIELDS
        for field in block.get("fields", []):
            assert len(field["text"]) <= md.FIELD_TEXT_MAX
            assert not field["text"].endswith("&am…")
    assert sum(len(b.get("fields", [])) for b in message["blocks"]) == 25  # split, not dropped
    assert "<!here>" not in str(message)


def test_mrkdwn_texts_are_verbatim_so_bare_links_are_not_linkified() -> None:
    message = render_message(view())
    for block in message["blocks"]:
        if isinstance(block.get("text"), dict) and block["text"]["type"] == "mrkdwn":
            assert block["text"]["verbatim"] is True


def test_control_and_bidi_characters_are_removed() -> None:
    assert md.escape("evil\u202egnp.exe\x00") == "evilgnp.exe"


def test_template_outputs_are_escaped_but_literal_text_is_kept() -> None:
    title = compile_template("*Key* for {{ fields['user.email'] }}")
    message = render_message(view(fields={"user.email": "<!channel>"}, title_template=title))
    joined = "\n".join(texts(message))
    assert "*Key* for &lt;!channel&gt;" in joined


def test_template_with_missing_field_falls_back_and_says_so() -> None:
    body = compile_template("{{ fields['nope'] }}")
    joined = "\n".join(texts(render_message(view(body_template=body))))
    assert "message template failed" in joined
    assert "why" in joined  # the default body (alert reason) is shown instead


def test_sandbox_blocks_attribute_escapes() -> None:
    body = compile_template("{{ fields.__class__.__mro__ }}")
    joined = "\n".join(texts(render_message(view(body_template=body))))
    assert "message template failed" in joined


def test_invisible_character_class_matches_unicodedata() -> None:
    import sys
    import unicodedata

    if unicodedata.unidata_version != "14.0.0":
        pytest.skip("the class is generated from Unicode 14 (Python 3.11)")
    step = 1 if "--full-unicode" in sys.argv else 7  # sampled: the full scan takes seconds
    for cp in range(0, 0x110000, step):
        ch = chr(cp)
        invisible = unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co") and ch not in "\n\t"
        assert (md.strip_invisible(ch) == "") == invisible, hex(cp)
