"""Alert-group state in process memory, mixed into :class:`secbot.store.memory.MemoryStore`.

Stored in the same shape as the Redis hash (:mod:`secbot.store.redis_groups`) and decoded by
the same function, so both stores answer alike. Methods never await while touching state, so
each is atomic on the event loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from secbot.domain.group import GroupJoin, GroupMeta, GroupState, GroupUpdate
from secbot.store.base import positive_ttl
from secbot.store.redis_groups import _SEP, group_state, update_fields


class MemoryGroups:
    """The group half of the Store contract; needs the ``_ExpiringMap`` factory of MemoryStore."""

    _members: Any  # _ExpiringMap[dict[str, None]] of MemoryStore
    _clock: Callable[[], float]

    def _maps(self) -> dict[str, dict[str, Any]]:
        maps: dict[str, dict[str, Any]] = self.__dict__.setdefault(
            "_group_maps", {"gkey": {}, "grp": {}, "groupof": {}, "pending": {}, "rate": {}}
        )
        return maps

    def _live(self, table: str, key: str) -> Any:
        item = self._maps()[table].get(key)
        if item is None:
            return None
        value, deadline = item
        if deadline is not None and deadline <= self._clock():
            del self._maps()[table][key]
            return None
        return value

    def _put(self, table: str, key: str, value: Any, ttl: float | None) -> None:
        self._maps()[table][key] = (value, None if ttl is None else self._clock() + ttl)

    async def claim_group(self, key: str, group_id: str, window: int) -> str:
        holder = self._live("gkey", key)
        if holder is None:
            self._put("gkey", key, group_id, positive_ttl("window", window))
            return group_id
        return str(holder)

    async def group_for_key(self, key: str) -> str | None:
        holder = self._live("gkey", key)
        return None if holder is None else str(holder)

    async def end_group(self, key: str, group_id: str | None) -> None:
        holder = self._live("gkey", key)
        if holder is not None and group_id in (None, holder):
            del self._maps()["gkey"][key]

    async def open_group(self, meta: GroupMeta, ttl: int) -> None:
        raw = self._live("grp", meta.group_id) or {}
        raw.setdefault("meta", meta.to_json())
        self._put("grp", meta.group_id, raw, positive_ttl("ttl", ttl))

    async def join_group(self, group_id: str, join: GroupJoin, ttl: int) -> int:
        ttl = positive_ttl("ttl", ttl)
        self._put("groupof", join.member_uuid, group_id, ttl)
        self._maps()["pending"][group_id] = (True, None)
        members: dict[str, None] = self._members.get(group_id) or {}
        if join.member_uuid in members:
            return list(members).index(join.member_uuid)
        raw: dict[str, str] = self._live("grp", group_id) or {}
        count = int(raw.get("count", 0)) + 1
        raw["count"] = str(count)
        raw.setdefault("first_seen", join.seen_at)
        raw["last_seen"] = join.seen_at
        status = "s:" + ("auto-closed" if join.auto_closed else "open")
        for name in (status, *(f"t:{k}{_SEP}{v}" for k, v in join.tally.items())):
            raw[name] = str(int(raw.get(name, 0)) + 1)
        members[join.member_uuid] = None
        self._members.set(group_id, members, ttl)
        self._put("grp", group_id, raw, ttl)
        return count - 1

    async def load_group(self, group_id: str) -> GroupState | None:
        raw = self._live("grp", group_id)
        return None if raw is None else group_state(dict(raw))

    async def group_of(self, member_uuid: str) -> str | None:
        found = self._live("groupof", member_uuid)
        return None if found is None else str(found)

    async def update_group(self, group_id: str, update: GroupUpdate, ttl: int) -> None:
        raw: dict[str, str] = self._live("grp", group_id) or {}
        raw.update(dict(update_fields(update)))
        if update.statuses is not None:
            for name in [k for k in raw if k.startswith("s:")]:
                del raw[name]
            raw.update({f"s:{k}": str(n) for k, n in update.statuses.items() if n})
            raw["redraw"] = str(int(raw.get("redraw", 0) or 0) + 1)
            self._maps()["pending"][group_id] = (True, None)
        self._put("grp", group_id, raw, positive_ttl("ttl", ttl))

    async def redrawn(self, group_id: str, version: int) -> None:
        raw = self._live("grp", group_id)
        if raw is not None and raw.get("redraw") == str(version):
            del raw["redraw"]

    async def pending_groups(self) -> list[str]:
        return sorted(self._maps()["pending"])

    async def settle_group(self, group_id: str) -> bool:
        raw = self._live("grp", group_id) or {}
        if int(raw.get("shown", 0)) >= int(raw.get("count", 0)) and "redraw" not in raw:
            self._maps()["pending"].pop(group_id, None)
            return True
        return False

    async def count_hit(self, key: str, member: str, window: float) -> int:
        now = time.time()
        hits: dict[str, float] = self._live("rate", key) or {}
        hits.setdefault(member, now)
        for name in [m for m, at in hits.items() if at < now - window]:
            del hits[name]
        self._put("rate", key, hits, window + 1)
        return len(hits)
