"""Stage 2, dedup: is this alert the first of its rule's dedup window, or a repeat?"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from secbot.domain.alert import Alert, thaw
from secbot.domain.group import GroupKey
from secbot.rules.ruleset import CompiledRule
from secbot.store.base import Store


@dataclass(frozen=True)
class Dedup:
    """``duplicate_of`` is the window's first alert (None when this one is first or the rule
    does not dedup); ``count`` is how many alerts hit the key so far, this one included;
    ``note`` says why an alert of a deduplicating rule stands alone (a key field missing)."""

    duplicate_of: str | None = None
    count: int = 1
    note: str | None = None


def dedup_key(rule: CompiledRule, alert: Alert) -> str | None:
    """Rule id + a hash of the key fields' values; None if any key field is missing."""
    assert rule.rule.dedup is not None
    values = [thaw(alert.get_field(name)) for name in rule.rule.dedup.key]
    if any(v is None for v in values):
        return None
    digest = hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()
    return f"{rule.id}:{digest[:32]}"


async def claim(store: Store, rule: CompiledRule, alert: Alert) -> Dedup:
    """Claim the alert's dedup key in the store (atomic across replicas)."""
    if rule.rule.dedup is None:
        return Dedup()
    key = dedup_key(rule, alert)
    if key is None:  # a key field is missing: never merge alerts on a partial key
        missing = [name for name in rule.rule.dedup.key if thaw(alert.get_field(name)) is None]
        return Dedup(note=f"not deduplicated: the alert has no {', '.join(missing)} "
                          "(dedup.key), so it is its own message")
    result = await store.claim_dedup(key, alert.uuid, rule.rule.dedup.window)
    first = result.first_uuid if result.first_uuid != alert.uuid else None
    return Dedup(duplicate_of=first, count=result.count)


@dataclass(frozen=True)
class Grouping:
    """The ``group.by`` outcome: a key to join, or a note saying why the alert stands alone."""

    key: GroupKey | None = None
    note: str | None = None


def group_key(rule: CompiledRule, alert: Alert) -> Grouping:
    """Rule id + a hash of the ``group.by`` values; an alert missing one is its own group,
    and its message says so (DESIGN.md §5: never merge alerts on a partial key)."""
    spec = rule.rule.group
    if spec is None:
        return Grouping()
    values = [thaw(alert.get_field(name)) for name in spec.by]
    missing = [name for name, value in zip(spec.by, values, strict=True) if value in (None, "")]
    if missing:
        return Grouping(note=f"not grouped: the alert has no {', '.join(missing)} (group.by)")
    digest = hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()
    return Grouping(key=GroupKey(
        key=f"by:{rule.id}:{digest[:32]}", window=int(spec.window), by=tuple(spec.by),
        values=tuple(str(v) for v in values),
    ))
