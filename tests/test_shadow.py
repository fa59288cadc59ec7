"""Shadow mode and expiry of auto-close (issue 15) through the real service: a shadow rule
says "would auto-close (shadow)" and never closes; people's later closes and
acknowledgements are compared with it; an expired rule stops closing and says so in its
channel once (across a restart); ``secbot rules trust --json`` reports what happened; and
``rules validate`` warns before an expiry."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from stack_support import INDEX, TRIAGER, es_status, eventually, posted
from trust_support import (
    alert,
    message_of,
    react,
    service,
    settled,
    shown,
    trust_json,
    world,
    write_rules,
)
from typer.testing import CliRunner

from secbot.cli import app

SHADOW = """
id: shadow_signin
name: Shadow sign-in
match: {rule_name: Shadow Sign-In}
fields: [user.email]
route: {channel: C0SHADOW}
auto_close:
  when: 'IncludedFields["user.email"].endswith("@example.com")'
  reason: benign_positive
  mode: shadow
"""
SHADOW_TWO = SHADOW.replace("shadow_signin", "shadow_vpn").replace(
    "Shadow Sign-In", "Shadow VPN").replace("Shadow sign-in", "Shadow VPN")
ENFORCE = """
id: enforce_signin
name: Enforced sign-in
match: {rule_name: Enforced Sign-In}
fields: [user.email]
route: {channel: C0ENFORCE}
auto_close:
  when: 'IncludedFields["user.email"].endswith("@example.com")'
  reason: benign_positive
"""
EXPIRED = """
id: expired_signin
name: Expired sign-in
match: {rule_name: Expired Sign-In}
fields: [user.email]
route: {channel: C0EXPIRED}
auto_close:
  when: 'IncludedFields["user.email"].endswith("@example.com")'
  reason: benign_positive
  expires: 2020-01-01
"""


async def test_shadow_never_closes_and_people_s_actions_are_counted(tmp_path: Path) -> None:
    rules_dir = tmp_path / "rules"
    ruleset = write_rules(rules_dir, SHADOW, SHADOW_TWO, ENFORCE)
    async with world("shadow") as (slack, es, prefix), service(slack, es, ruleset,
                                                               prefix) as stack:
        es.index_documents(INDEX, [alert(f"sh-{n}", "Shadow Sign-In") for n in (1, 2, 3)]
                           + [alert("sh-4", "Shadow Sign-In", "eve@evil.test")]
                           + [alert(f"vpn-{n}", "Shadow VPN") for n in (1, 2)]
                           + [alert("en-1", "Enforced Sign-In")])
        await posted(stack, "C0SHADOW", 4)
        await posted(stack, "C0ENFORCE", 1)
        first = await message_of(stack, "C0SHADOW", "sh-1")
        assert "would auto-close (shadow): benign_positive" in shown(first)
        assert "would auto-close" not in shown(await message_of(stack, "C0SHADOW", "sh-4"))
        await settled(stack, lambda: es_status(stack, "en-1") == "closed")  # enforce closes
        await asyncio.sleep(1.0)  # several polls: a shadow alert is never closed
        assert [es_status(stack, f"sh-{n}") for n in (1, 2, 3, 4)] == ["open"] * 4
        assert "white_check_mark" not in first.reactions  # no bot ✅ either

        # A person closes as benign (agree), acknowledges (disagree), closes as false
        # positive (agree); closing a would-not-close alert is no decision at all.
        for uid, emoji in (("sh-1", "white_check_mark"), ("sh-2", "eyes"), ("sh-3", "x"),
                           ("sh-4", "white_check_mark"), ("vpn-1", "white_check_mark"),
                           ("vpn-2", "x")):
            react(stack, TRIAGER, emoji, "C0SHADOW", (await message_of(
                stack, "C0SHADOW", uid)).ts)
        await settled(stack, lambda: es_status(stack, "vpn-2") == "closed"
                      and es_status(stack, "sh-2") == "acknowledged")
        # SecBot's real close, reopened by a person: a disagreement for the enforce rule.
        react(stack, TRIAGER, "arrows_counterclockwise", "C0ENFORCE",
              (await message_of(stack, "C0ENFORCE", "en-1")).ts)
        await settled(stack, lambda: es_status(stack, "en-1") == "open")

        async def counted() -> dict[str, dict[str, object]] | None:
            rows = await trust_json(rules_dir, prefix, promote_after=2)
            done = rows["enforce_signin"]["disagreements"] == 1 and rows["shadow_vpn"][
                "agreements"] == 2
            return rows if done else None

        rows = await eventually(counted)
    shadow = rows["shadow_signin"]
    assert (shadow["mode"], shadow["decisions"], shadow["agreements"],
            shadow["disagreements"]) == ("shadow", 3, 2, 1)
    assert shadow["precision"] == round(2 / 3, 4)
    assert not shadow["promote_suggested"]  # a disagreement blocks promotion
    [against] = shadow["disagreement_alerts"]
    assert against["alert"] == "sh-2" and against["why"] == "acknowledged"
    assert against["link"].startswith("http")  # the alert's Slack permalink
    vpn = rows["shadow_vpn"]
    assert (vpn["decisions"], vpn["agreements"], vpn["disagreements"]) == (2, 2, 0)
    assert vpn["precision"] == 1.0 and vpn["promote_suggested"]
    enforce = rows["enforce_signin"]
    assert (enforce["mode"], enforce["decisions"], enforce["agreements"]) == ("enforce", 1, 0)
    assert enforce["disagreement_alerts"][0]["why"] == "reopened after auto-close"
    assert not enforce["promote_suggested"]  # an enforced rule has nothing to be promoted to


async def test_an_expired_rule_stops_closing_and_says_so_once(tmp_path: Path) -> None:
    ruleset = write_rules(tmp_path / "rules", EXPIRED)

    def notices(stack_messages: list[object]) -> int:
        return sum("Auto-close of rule" in getattr(m, "text", "") for m in stack_messages)

    async with world("expired") as (slack, es, prefix):
        async with service(slack, es, ruleset, prefix) as first:
            es.index_documents(INDEX, [alert("ex-1", "Expired Sign-In"),
                                       alert("ex-2", "Expired Sign-In")])
            await posted(first, "C0EXPIRED", 3)  # two alerts and the notice
            message = await message_of(first, "C0EXPIRED", "ex-1")
            assert "would auto-close (shadow)" in shown(message)
            assert "auto-close expired on 2020-01-01" in shown(message)
            await asyncio.sleep(1.0)
            assert es_status(first, "ex-1") == es_status(first, "ex-2") == "open"
            [notice] = [m for m in first.top_messages("C0EXPIRED")
                        if "Auto-close of rule" in m.text]
            assert "expired on 2020-01-01" in notice.text and "shadow" in notice.text
        await slack.drop_connections()
        async with service(slack, es, ruleset, prefix) as second:  # a restart: told already
            es.index_documents(INDEX, [alert("ex-3", "Expired Sign-In")])
            await message_of(second, "C0EXPIRED", "ex-3")
            await asyncio.sleep(0.5)
            assert es_status(second, "ex-3") == "open"
            assert notices(second.top_messages("C0EXPIRED")) == 1


def test_rules_validate_warns_two_weeks_before_an_expiry(tmp_path: Path) -> None:
    soon = (datetime.now(UTC).date() + timedelta(days=9)).isoformat()
    later = (datetime.now(UTC).date() + timedelta(days=40)).isoformat()
    write_rules(tmp_path, ENFORCE.replace("reason: benign_positive",
                                          f"reason: benign_positive\n  expires: {soon}"),
                EXPIRED.replace("2020-01-01", later))
    result = CliRunner().invoke(app, ["rules", "validate", str(tmp_path),
                                      "--lists", str(tmp_path / "none")])
    assert result.exit_code == 0, result.output
    warning = [line for line in result.stdout.splitlines() if "auto_close.expires" in line]
    assert warning == [f"{tmp_path / 'enforce_signin.yaml'}:10: warning: auto_close.expires "
                       f"{soon} is in 9 days"]
