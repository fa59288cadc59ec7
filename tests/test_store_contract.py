"""The Store contract (secbot/store/base.py), run against every implementation.

The ``store`` fixture is parametrized, so each contract test runs once on Redis (a real server at
127.0.0.1:6379, a unique key prefix per test, keys removed afterwards) and once on the in-memory
store. Without a Redis server the Redis runs are skipped locally and fail under CI (``CI`` set).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

import pytest
import redis.asyncio as aioredis

from secbot.domain.group import Batch, GroupJoin, GroupMeta, GroupUpdate
from secbot.domain.record import AlertRecord, RecordUpdate, StatusIntent
from secbot.domain.status import AuditAction
from secbot.store.base import AuditEntry, MessageRef, Store, StoreUnavailable
from secbot.store.memory import MemoryStore
from secbot.store.redis import RedisStore

REDIS_URL = "redis://127.0.0.1:6379/0"


async def _redis_up() -> bool:
    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(await client.ping())
    except (aioredis.RedisError, OSError):
        return False
    finally:
        await client.aclose()


async def _delete_prefix(prefix: str) -> None:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def _fresh_prefix() -> str:
    """A unique key prefix on the real server (skip locally, fail in CI, when it is down)."""
    if not await _redis_up():
        if os.environ.get("CI"):
            pytest.fail("no Redis at 127.0.0.1:6379 (run .ci/redis.sh)")
        pytest.skip("no Redis at 127.0.0.1:6379 (run .ci/redis.sh)")
    return f"secbot-test:{uuid4().hex}:"


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    prefix = await _fresh_prefix()
    yield prefix
    await _delete_prefix(prefix)


@pytest.fixture(params=["redis", "memory"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    prefix = await _fresh_prefix()
    impl = RedisStore.from_url(REDIS_URL, prefix)
    try:
        yield impl
    finally:
        await impl.close()
        await _delete_prefix(prefix)


def _entry(alert: str, action: str, at: datetime, **kw: Any) -> AuditEntry:
    return AuditEntry(
        alert_uuid=alert, actor="U123", action=AuditAction(action), reason="why", at=at, **kw
    )


# -- alert records -----------------------------------------------------------------------------


def _record(uuid: str = "a1", **changes: Any) -> AlertRecord:
    base = AlertRecord(
        uuid=uuid,
        id=f"id-{uuid}",
        index=".alerts-security.alerts-default",
        rule_id="gcp_sa_key_created",
        rule_name="GCP service account key created",
        severity="high",
        timestamp="2026-11-01T10:00:00Z",
        fields={
            "host.name": "web-1",
            "risk": 73,
            "score": 0.5,
            "tags": ["a", "b"],
            "nested": {"user": "zoë", "ok": True, "none": None},
        },
        channel="C1",
        auto_close=True,
        close_reason="expected_activity",
    )
    return replace(base, **changes)


async def test_alert_record_round_trip(store: Store) -> None:
    record = _record(message={"text": "alert a1", "blocks": []}, group_id="g-7")
    await store.save_record(record, ttl=60)
    assert await store.load_record("a1") == record
    assert await store.load_record("unknown") is None


async def test_saving_a_record_again_replaces_it(store: Store) -> None:
    await store.save_record(_record(message={"text": "old"}, group_id="g-1"), ttl=60)
    await store.save_record(_record(severity="low"), ttl=60)
    assert await store.load_record("a1") == _record(severity="low")  # no field left over


async def test_record_updates_change_only_their_fields(store: Store) -> None:
    await store.save_record(_record(), ttl=60)
    ref = MessageRef("C1", "17.01")
    assert await store.update_record("a1", RecordUpdate(message_ref=ref), ttl=60)
    assert await store.load_record("a1") == _record(message_ref=ref)


async def test_field_updates_from_two_writers_do_not_lose_each_other(store: Store) -> None:
    """Both writers read the record first, as a read-modify-write would; neither save undoes
    the other's change (with whole-record saves, the second would erase the first)."""
    await store.save_record(_record(), ttl=60)
    seen_by_reaction = await store.load_record("a1")
    seen_by_publisher = await store.load_record("a1")
    assert seen_by_reaction is not None and seen_by_publisher is not None
    await store.update_record("a1", RecordUpdate(status="closed"), ttl=60)
    await store.update_record("a1", RecordUpdate(message_ref=MessageRef("C1", "1.2")), ttl=60)
    got = await store.load_record("a1")
    assert got is not None and got.status == "closed" and got.message_ref == MessageRef("C1", "1.2")


async def test_concurrent_updates_of_different_fields_all_survive(store: Store) -> None:
    await store.save_record(_record(), ttl=60)
    await asyncio.gather(
        *(store.update_record("a1", RecordUpdate(status="acknowledged"), ttl=60) for _ in range(9)),
        *(store.update_record("a1", RecordUpdate(group_id=f"g-{i}"), ttl=60) for i in range(20)),
        store.update_record("a1", RecordUpdate(message={"text": "edited"}), ttl=60),
    )
    got = await store.load_record("a1")
    assert got is not None and got.status == "acknowledged" and got.group_id is not None
    assert got.message == {"text": "edited"} and got.fields == _record().fields


async def test_an_update_never_creates_a_record(store: Store) -> None:
    assert not await store.update_record("gone", RecordUpdate(status="closed"), ttl=60)
    assert await store.load_record("gone") is None


async def test_ttl_below_one_second_is_refused(store: Store) -> None:
    with pytest.raises(ValueError):
        await store.save_record(_record(), ttl=0)
    with pytest.raises(ValueError):
        await store.claim_dedup("k", "a1", window=0)


async def test_everything_with_a_ttl_expires(store: Store) -> None:
    await store.save_record(_record("a1"), ttl=1)
    await store.link_message("a1", MessageRef("C1", "1700000000.000100"), ttl=1)
    await store.mark_posted("a1", ttl=1)
    assert await store.claim_post("a1", ttl=1)
    await store.save_record(_record("a2"), ttl=60)  # a longer TTL survives
    await store.save_record(_record("a3"), ttl=1)
    assert await store.update_record("a3", RecordUpdate(status="open"), ttl=60)  # renews
    await asyncio.sleep(1.2)
    assert await store.load_record("a1") is None
    assert not await store.update_record("a1", RecordUpdate(status="closed"), ttl=60)
    assert await store.load_record("a1") is None  # a late update does not resurrect it
    assert await store.message_for_alert("a1") is None
    assert await store.alert_for_message("C1", "1700000000.000100") is None
    assert not await store.is_posted("a1")
    assert await store.claim_post("a1", ttl=60)  # a dead replica's claim frees itself
    assert await store.load_record("a2") == _record("a2")
    assert await store.load_record("a3") is not None


# -- message <-> alert -------------------------------------------------------------------------


async def test_message_and_alert_found_from_each_other(store: Store) -> None:
    await store.link_message("a1", MessageRef("C1", "1700000000.000100"), ttl=60)
    await store.link_message("a2", MessageRef("C2", "1700000000.000200"), ttl=60)
    assert await store.message_for_alert("a1") == MessageRef("C1", "1700000000.000100")
    assert await store.alert_for_message("C1", "1700000000.000100") == "a1"
    assert await store.alert_for_message("C2", "1700000000.000200") == "a2"
    # Same ts in another channel is another message.
    assert await store.alert_for_message("C2", "1700000000.000100") is None
    assert await store.message_for_alert("unknown") is None


# -- dedup -------------------------------------------------------------------------------------


async def test_dedup_counts_hits_and_points_to_the_first(store: Store) -> None:
    first = await store.claim_dedup("rule1|host-a", "a1", window=60)
    assert (first.first_uuid, first.count, first.is_duplicate) == ("a1", 1, False)
    second = await store.claim_dedup("rule1|host-a", "a2", window=60)
    third = await store.claim_dedup("rule1|host-a", "a3", window=60)
    assert (second.first_uuid, second.count, second.is_duplicate) == ("a1", 2, True)
    assert (third.first_uuid, third.count) == ("a1", 3)
    other = await store.claim_dedup("rule1|host-b", "a4", window=60)
    assert (other.first_uuid, other.count) == ("a4", 1)


async def test_dedup_claim_is_idempotent_per_alert(store: Store) -> None:
    # The poller re-reads an overlap behind its checkpoint: the same alert must not count twice.
    await store.claim_dedup("k", "a1", window=60)
    await store.claim_dedup("k", "a2", window=60)
    assert (await store.claim_dedup("k", "a1", window=60)).count == 1
    assert (await store.claim_dedup("k", "a2", window=60)).count == 2
    assert (await store.claim_dedup("k", "a3", window=60)).count == 3


async def test_dedup_window_is_not_extended_by_duplicates(store: Store) -> None:
    assert (await store.claim_dedup("k", "a1", window=1)).count == 1
    await asyncio.sleep(0.6)
    assert (await store.claim_dedup("k", "a2", window=1)).first_uuid == "a1"
    await asyncio.sleep(0.6)  # 1.2 s after the first claim, 0.6 s after the duplicate
    fresh = await store.claim_dedup("k", "a3", window=1)
    assert (fresh.first_uuid, fresh.count) == ("a3", 1)


async def test_concurrent_dedup_claims_have_one_first(store: Store) -> None:
    uuids = [f"a{i}" for i in range(20)]
    results = await asyncio.gather(*(store.claim_dedup("k", u, window=60) for u in uuids))
    firsts = [u for u, r in zip(uuids, results, strict=True) if not r.is_duplicate]
    assert len(firsts) == 1
    assert {r.first_uuid for r in results} == set(firsts)
    assert sorted(r.count for r in results) == list(range(1, 21))


# -- exactly-once posting ----------------------------------------------------------------------


async def test_concurrent_post_claims_have_one_owner(store: Store) -> None:
    results = await asyncio.gather(*(store.claim_post("a1", ttl=60) for _ in range(20)))
    assert results.count(True) == 1
    assert await store.claim_post("a2", ttl=60)  # claims are per alert


async def test_released_claim_can_be_claimed_again(store: Store) -> None:
    assert await store.claim_post("a1", ttl=60)
    assert not await store.claim_post("a1", ttl=60)
    await store.release_post("a1")
    assert await store.claim_post("a1", ttl=60)
    await store.release_post("never-claimed")  # harmless


async def test_posted_marker(store: Store) -> None:
    assert not await store.is_posted("a1")
    await store.mark_posted("a1", ttl=60)
    assert await store.is_posted("a1")
    assert not await store.is_posted("a2")


# -- checkpoints -------------------------------------------------------------------------------


async def test_checkpoints(store: Store) -> None:
    assert await store.get_checkpoint("poller") is None
    await store.set_checkpoint("poller", '{"ts": "2024-01-01T00:00:00Z"}')
    await store.set_checkpoint("other", "x")
    assert await store.get_checkpoint("poller") == '{"ts": "2024-01-01T00:00:00Z"}'
    await store.set_checkpoint("poller", "2")
    assert await store.get_checkpoint("poller") == "2"
    assert await store.get_checkpoint("other") == "x"


# -- audit -------------------------------------------------------------------------------------


async def test_audit_appended_and_read_back_in_order(store: Store) -> None:
    t0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    written = [
        _entry("a1", "acknowledged", t0, rule_id="r1"),
        _entry("a2", "closed", t0 + timedelta(seconds=1), extra={"tag": "closed_by:U123"}),
        _entry("a1", "closed", t0 + timedelta(seconds=2), rule_id="r1"),
    ]
    ids = [await store.append_audit(e) for e in written]
    assert len(set(ids)) == 3
    assert await store.read_audit() == written
    assert await store.read_audit("a1") == [written[0], written[2]]
    assert await store.read_audit("a2") == [written[1]]
    assert await store.read_audit("unknown") == []


async def test_audit_times_come_back_as_aware_utc(store: Store) -> None:
    paris = timezone(timedelta(hours=2))
    await store.append_audit(_entry("a1", "open", datetime(2024, 5, 1, 14, 0, tzinfo=paris)))
    await store.append_audit(_entry("a1", "closed", datetime(2024, 5, 1, 12, 30)))  # naive = UTC
    got = [e.at for e in await store.read_audit("a1")]
    assert got == [
        datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        datetime(2024, 5, 1, 12, 30, tzinfo=UTC),
    ]
    assert all(at.utcoffset() == timedelta(0) for at in got)


async def test_audit_limit_keeps_the_newest_oldest_first(store: Store) -> None:
    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    actions = ["open", "acknowledged", "in-progress", "closed", "open"]
    for i, action in enumerate(actions):
        await store.append_audit(_entry("a1", action, t0 + timedelta(seconds=i)))
        await store.append_audit(_entry("a2", action, t0 + timedelta(seconds=i)))
    got = await store.read_audit("a1", limit=3)
    assert [e.action for e in got] == [AuditAction.IN_PROGRESS, AuditAction.CLOSED, "open"]
    assert [e.alert_uuid for e in await store.read_audit(limit=2)] == ["a1", "a2"]
    assert await store.read_audit(limit=0) == []


async def test_ping(store: Store) -> None:
    assert await store.ping()


# -- Redis only --------------------------------------------------------------------------------


async def test_redis_keys_follow_the_documented_layout(redis_prefix: str) -> None:
    store = RedisStore.from_url(REDIS_URL, redis_prefix)
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        await store.save_record(_record("a1"), ttl=60)
        await store.link_message("a1", MessageRef("C1", "17.01"), ttl=60)
        await store.claim_dedup("r1|h", "a1", window=60)
        await store.claim_dedup("r1|h", "a2", window=60)
        await store.append_audit(_entry("a1", "closed", datetime(2024, 5, 1, tzinfo=UTC)))
        p = redis_prefix
        assert await client.get(f"{p}msg:a1") == "C1|17.01"
        assert await client.get(f"{p}ts:C1:17.01") == "a1"
        assert 0 < await client.ttl(f"{p}rec:a1") <= 60
        assert await client.hget(f"{p}rec:a1", "severity") == '"high"'  # one JSON value a field
        dedup = await client.hgetall(f"{p}dedup:r1|h")
        assert (dedup["first"], dedup["count"]) == ("a1", "2")
        assert 0 < await client.ttl(f"{p}dedup:r1|h") <= 60
        entries = await client.xrange(f"{p}audit") or []
        assert len(entries) == 1
        assert {"who", "when", "what", "why", "rule", "alert"} <= set(entries[0][1] or {})
    finally:
        await client.aclose()
        await store.close()


async def test_redis_prefixes_isolate_stores(redis_prefix: str) -> None:
    one = RedisStore.from_url(REDIS_URL, redis_prefix + "one:")
    two = RedisStore.from_url(REDIS_URL, redis_prefix + "two:")
    try:
        await one.set_checkpoint("poller", "1")
        assert await two.get_checkpoint("poller") is None
        assert await one.claim_post("a1", ttl=60)
        assert await two.claim_post("a1", ttl=60)
    finally:
        await one.close()
        await two.close()


async def test_redis_works_with_a_bytes_client(redis_prefix: str) -> None:
    store = RedisStore(aioredis.Redis.from_url(REDIS_URL), prefix=redis_prefix)  # no decoding
    try:
        await store.link_message("a1", MessageRef("C1", "17.01"), ttl=60)
        assert await store.message_for_alert("a1") == MessageRef("C1", "17.01")
        assert (await store.claim_dedup("k", "a1", window=60)).first_uuid == "a1"
        entry = _entry("a1", "closed", datetime(2024, 5, 1, tzinfo=UTC), extra={"k": "v"})
        await store.append_audit(entry)
        assert await store.read_audit("a1") == [entry]
    finally:
        await store.close()


async def test_redis_unreachable_raises_store_unavailable() -> None:
    url = "redis://:s3cret@127.0.0.1:1/0"  # nothing listens on port 1
    store = RedisStore.from_url(url, "x:", socket_timeout=0.5, connect_timeout=0.5)
    try:
        assert await store.ping() is False
        with pytest.raises(StoreUnavailable) as caught:
            await store.get_checkpoint("poller")
        assert "s3cret" not in str(caught.value)
        assert url not in str(caught.value)
        with pytest.raises(StoreUnavailable):
            await store.claim_dedup("k", "a1", window=60)
        with pytest.raises(StoreUnavailable):
            await store.link_message("a1", MessageRef("C1", "1.2"), ttl=60)
        with pytest.raises(StoreUnavailable):
            await store.read_audit("a1")
    finally:
        await store.close()


async def test_redis_filtered_audit_read_pages_through_the_stream(
    redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("secbot.store.redis._AUDIT_PAGE", 2)  # force many small XREVRANGE pages
    store = RedisStore.from_url(REDIS_URL, redis_prefix)
    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    try:
        await store.append_audit(_entry("old", "closed", t0))
        for i in range(7):
            await store.append_audit(_entry("noise", "open", t0 + timedelta(seconds=i)))
        await store.append_audit(_entry("old", "open", t0 + timedelta(minutes=1)))
        assert [e.action for e in await store.read_audit("old")] == ["closed", "open"]
        assert [e.action for e in await store.read_audit("old", limit=1)] == ["open"]
        assert len(await store.read_audit(limit=5)) == 5
    finally:
        await store.close()


async def test_records_of_the_old_format_count_as_missing(redis_prefix: str) -> None:
    store = RedisStore.from_url(REDIS_URL, redis_prefix)
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        # What the previous version wrote: one JSON string under another key.
        await client.set(f"{redis_prefix}alert:old", '{"uuid": "old", "id": "old"}', ex=60)
        await client.hset(f"{redis_prefix}rec:half", mapping={"status": '"closed"'})
        assert await store.load_record("old") is None
        assert await store.load_record("half") is None  # no version, no identity: unusable
        assert not await store.update_record("old", RecordUpdate(status="closed"), ttl=60)
    finally:
        await store.close()
        await client.aclose()


async def test_two_replicas_updating_one_record_lose_nothing(redis_prefix: str) -> None:
    one = RedisStore.from_url(REDIS_URL, redis_prefix)
    two = RedisStore.from_url(REDIS_URL, redis_prefix)
    try:
        await one.save_record(_record(), ttl=60)
        ref = MessageRef("C1", "9.9")
        await asyncio.gather(
            *(one.update_record("a1", RecordUpdate(status="closed"), ttl=60) for _ in range(25)),
            *(two.update_record("a1", RecordUpdate(message_ref=ref), ttl=60) for _ in range(25)),
        )
        got = await two.load_record("a1")
        assert got is not None and got.status == "closed" and got.message_ref == ref
        assert got.fields == _record().fields
    finally:
        await one.close()
        await two.close()


# -- memory only -------------------------------------------------------------------------------


async def test_memory_store_expiry_follows_an_injected_clock() -> None:
    now = [1000.0]
    store = MemoryStore(clock=lambda: now[0])
    await store.save_record(_record("a1"), ttl=30)
    assert (await store.claim_dedup("k", "a1", window=30)).count == 1
    now[0] += 29.9
    assert await store.load_record("a1") == _record("a1")
    assert (await store.claim_dedup("k", "a2", window=30)).count == 2
    now[0] += 0.2
    assert await store.load_record("a1") is None
    assert (await store.claim_dedup("k", "a3", window=30)).first_uuid == "a3"


async def test_lease_has_one_holder_renews_and_expires(store: Store) -> None:
    assert await store.acquire_lease("poller", "replica-a", 0.5)
    assert not await store.acquire_lease("poller", "replica-b", 0.5)
    assert await store.acquire_lease("poller", "replica-a", 0.5)  # renewal
    await asyncio.sleep(0.7)
    assert await store.acquire_lease("poller", "replica-b", 5)  # a's lease ran out
    assert not await store.acquire_lease("poller", "replica-a", 5)
    await store.release_lease("poller", "replica-a")  # not the holder: no effect
    assert not await store.acquire_lease("poller", "replica-a", 5)
    await store.release_lease("poller", "replica-b")
    assert await store.acquire_lease("poller", "replica-a", 5)


async def test_concurrent_lease_attempts_elect_exactly_one(store: Store) -> None:
    results = await asyncio.gather(
        *(store.acquire_lease("race", f"r{i}", 5) for i in range(20)))
    assert sum(results) == 1


async def test_audit_once_key_writes_a_single_entry(store: Store) -> None:
    entry = AuditEntry(alert_uuid="once-1", actor="secbot", action=AuditAction.CLOSED,
                       reason="expected_activity", at=datetime.now(UTC))
    first = await store.append_audit(entry, once_key="auto-close:once-1")
    again = await store.append_audit(entry, once_key="auto-close:once-1")
    assert first is not None and again is None
    assert len(await store.read_audit("once-1")) == 1


# -- groups and status-change intents ------------------------------------------------------------


async def test_group_members_join_once_in_order_and_never_take_the_message(store: Store) -> None:
    first = MessageRef("C1", "1700000000.000300")
    await store.link_message("g1", first, ttl=60)
    for member in ("d1", "d2", "d1", "d3"):  # d1 redelivered: counted once
        await store.link_member("g1", member, first, ttl=60)
    assert await store.group_members("g1") == ["d1", "d2", "d3"]
    assert await store.alert_for_message("C1", first.ts) == "g1"  # still the first alert's
    assert await store.message_for_alert("d2") == first  # the duplicate is shown there
    assert await store.group_members("nobody") == []


async def test_concurrent_members_all_join(store: Store) -> None:
    ref = MessageRef("C1", "1.0")
    await asyncio.gather(*(store.link_member("g2", f"m{i}", ref, ttl=60) for i in range(20)))
    assert sorted(await store.group_members("g2")) == sorted(f"m{i}" for i in range(20))


async def test_an_intent_is_kept_until_its_own_change_clears_it(store: Store) -> None:
    older = StatusIntent("c-old", "i1", "closed", "benign_positive", "alice@example.com",
                         "U0TRIAGER", "2026-11-01T10:00:00+00:00", "gcp_sa_key_created")
    newer = replace(older, change_id="c-new", status="acknowledged", reason=None)
    await store.save_intent(older, ttl=60)
    assert await store.load_intent("i1") == older
    await store.save_intent(newer, ttl=60)
    await store.clear_intent("i1", "c-old")  # a late, older attempt: the newer one stays
    assert await store.load_intent("i1") == newer
    await store.clear_intent("i1", "c-new")
    assert await store.load_intent("i1") is None
    assert await store.load_intent("unknown") is None


# -- alert groups ---------------------------------------------------------------------------


def _meta(group_id: str) -> GroupMeta:
    return GroupMeta(group_id=group_id, kind="storm", rule_id="r", rule_name="R", channel="C1",
                     fields=("user.email",))


async def test_a_group_key_leads_to_the_first_group_until_ended(store: Store) -> None:
    assert await store.claim_group("storm:r:C1", "group:a", 60) == "group:a"
    assert await store.claim_group("storm:r:C1", "group:b", 60) == "group:a"
    await store.end_group("storm:r:C1", "group:other")  # not the holder: kept
    assert await store.claim_group("storm:r:C1", "group:c", 60) == "group:a"
    await store.end_group("storm:r:C1", None)
    assert await store.claim_group("storm:r:C1", "group:d", 60) == "group:d"


async def test_members_join_once_in_order_with_tallies_and_status_counts(store: Store) -> None:
    await store.open_group(_meta("group:j"), 60)
    await store.open_group(replace(_meta("group:j"), rule_name="other"), 60)  # kept as is
    joins = [GroupJoin(f"m{i}", f"t{i}", auto_closed=i == 2, tally={"user.email": f"u{i % 2}"})
             for i in range(3)]
    positions = [await store.join_group("group:j", j, 60) for j in joins]
    assert positions == [0, 1, 2]
    assert await store.join_group("group:j", joins[1], 60) == 1  # again: nothing changes
    state = await store.load_group("group:j")
    assert state is not None and state.meta.rule_name == "R"
    assert (state.count, state.shown, state.first_seen, state.last_seen) == (3, 0, "t0", "t2")
    assert state.tallies == {"user.email": {"u0": 2, "u1": 1}}
    assert (state.counts.open, state.counts.auto_closed) == (2, 1)
    assert await store.group_members("group:j") == ["m0", "m1", "m2"]
    assert await store.group_members("group:j", 1, 1) == ["m1"]
    assert await store.group_of("m2") == "group:j"


async def test_a_group_stays_pending_until_every_member_is_listed_and_redrawn(
    store: Store,
) -> None:
    await store.open_group(_meta("group:p"), 60)
    for i in range(2):
        await store.join_group("group:p", GroupJoin(f"p{i}", "t"), 60)
    assert await store.pending_groups() == ["group:p"]
    await store.update_group("group:p", GroupUpdate(inflight=(0, 2)), 60)
    assert not await store.settle_group("group:p")
    await store.update_group("group:p", GroupUpdate(batch=Batch(0, 2, "1.1")), 60)
    state = await store.load_group("group:p")
    assert state is not None and (state.shown, state.inflight) == (2, None)
    assert state.batch_of(1) == Batch(0, 2, "1.1")
    await store.update_group("group:p", GroupUpdate(statuses={"closed": 2}), 60)
    assert not await store.settle_group("group:p")  # a redraw was asked for
    state = await store.load_group("group:p")
    assert state is not None and state.counts.closed == 2 and state.redraw
    await store.redrawn("group:p", state.redraw)
    assert await store.settle_group("group:p")
    assert await store.pending_groups() == []


async def test_count_hit_counts_each_member_once_inside_the_window(store: Store) -> None:
    assert [await store.count_hit("k", m, 60) for m in ("a", "b", "a")] == [1, 2, 2]
