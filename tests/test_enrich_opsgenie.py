"""oncall via Opsgenie: the second on-call adapter, same result shape as PagerDuty."""

from __future__ import annotations

from enrich_support import FAST, alert

from secbot.enrich.oncall import OnCallEnricher, OpsgenieAdapter
from secbot_emulators.providers import Script, json_reply

USER = {"data": {"id": "b5b92115", "username": "sre@example.com", "fullName": "Sam Reyes"}}
ONCALLS = {
    "data": [
        {
            "_parent": {"id": "s1", "name": "platform-primary", "enabled": True},
            "onCallRecipients": ["SRE@example.com", "lee@example.com"],
        },
        {
            "_parent": {"id": "s2", "name": "security", "enabled": True},
            "onCallRecipients": ["carol@example.com"],
        },
    ],
    "took": 0.1,
    "requestId": "r",
}


def oncall(script: Script) -> OnCallEnricher:
    return OnCallEnricher(
        script.client(), OpsgenieAdapter("https://og.local", "og-key", policy=FAST)
    )


async def test_on_call_in_one_schedule() -> None:
    script = (
        Script()
        .on("/v2/users/sre@example.com", json_reply(200, USER))
        .on("/v2/schedules/on-calls", json_reply(200, ONCALLS))
    )
    result = await oncall(script).enrich(alert(user={"email": "sre@example.com"}))
    assert result.available, result.error
    assert result.data["on_call"] is True and list(result.data["schedules"]) == ["platform-primary"]
    assert result.data["provider"] == "opsgenie"
    _, oncalls = script.requests
    assert oncalls.headers["Authorization"] == "GenieKey og-key"
    assert oncalls.url.params["flat"] == "true"


async def test_known_user_off_shift_and_unknown_user() -> None:
    off = {"data": [{"_parent": {"name": "security"}, "onCallRecipients": ["x@example.com"]}]}
    script = (
        Script()
        .on("/v2/users/sre@example.com", json_reply(200, USER))
        .on("/v2/schedules/on-calls", json_reply(200, off))
    )
    result = await oncall(script).lookup("sre@example.com")
    assert result.available and result.data["on_call"] is False
    missing = Script().on(
        "/v2/users/ghost@example.com", json_reply(404, {"message": "No user exists with username"})
    )
    unknown = await oncall(missing).lookup("ghost@example.com")
    assert not unknown.available and "not found" in (unknown.error or "")


async def test_unauthorized_key_is_unavailable() -> None:
    script = Script().on("/v2/users/sre@example.com", json_reply(401, {"message": "bad key"}))
    result = await oncall(script).lookup("sre@example.com")
    assert not result.available and "401" in (result.error or "")
