"""``secbot rules trust``: how far each auto-close rule can be trusted (issue 15).

Per rule with an ``auto_close``: its mode now (``enforce``, or ``shadow`` with why: the
rule's own mode, an expired ``expires``, a demotion by review), its decisions (shadow
"would auto-close" verdicts and real auto-closes recorded by
:class:`secbot.review.judge.TrustRecorder`), the agreements and disagreements people's later
actions and reviews gave them (:func:`secbot.review.judge.verdict_of`), the precision
``agreements / (agreements + disagreements)`` (None before any verdict), and
``promote_suggested``: a rule held in shadow with at least ``promote_after`` agreements and
no disagreement at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from secbot.pipeline.decide import DemotedLookup, Gate, held_by
from secbot.review.reactions import demotion_text
from secbot.review.state import TrustState
from secbot.rules.ruleset import RuleSet
from secbot.rules.yamlsource import load_yaml


@dataclass(frozen=True)
class Disagreement:
    alert: str
    link: str
    why: str
    by: str


@dataclass(frozen=True)
class RuleTrust:
    """One rule's line of the report."""

    rule: str
    mode: str  # "enforce" or "shadow"
    held: str | None  # why it is shadow now (None: enforced)
    expires: str | None
    decisions: int
    agreements: int
    disagreements: tuple[Disagreement, ...]
    promote_suggested: bool

    @property
    def precision(self) -> float | None:
        judged = self.agreements + len(self.disagreements)
        return round(self.agreements / judged, 4) if judged else None

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule, "mode": self.mode, "held": self.held, "expires": self.expires,
            "decisions": self.decisions, "agreements": self.agreements,
            "disagreements": len(self.disagreements),
            "disagreement_alerts": [
                {"alert": d.alert, "link": d.link, "why": d.why, "by": d.by}
                for d in self.disagreements],
            "precision": self.precision, "promote_suggested": self.promote_suggested,
        }


async def trust_report(state: TrustState, rules: RuleSet, *, today: date,
                       promote_after: int) -> list[RuleTrust]:
    """The report, rule by rule in file order (only rules with an ``auto_close``)."""
    out = []
    for rule in rules:
        spec = rule.rule.auto_close
        if spec is None:
            continue
        demotion = await state.demotion(rule.id)
        held = held_by(rule, Gate(today=today,
                                  demoted=demotion_text(demotion) if demotion else None))
        links = {d.uuid: d.link for d in await state.decisions(rule.id)}
        verdicts = await state.judgements(rule.id)
        agreements = sum(v.agree for v in verdicts)
        against = tuple(sorted(
            (Disagreement(v.uuid, links.get(v.uuid, ""), v.why, v.by)
             for v in verdicts if not v.agree), key=lambda d: d.alert))
        out.append(RuleTrust(
            rule=rule.id, mode="enforce" if held is None else "shadow", held=held,
            expires=spec.expires.isoformat() if spec.expires else None,
            decisions=len(links), agreements=agreements, disagreements=against,
            promote_suggested=held is not None and not against and agreements >= promote_after,
        ))
    return out


def report_json(rows: list[RuleTrust], promote_after: int) -> dict[str, Any]:
    """The ``--json`` document: one object, like ``secbot stats --json``."""
    return {"promote_after": promote_after, "rules": [row.to_json() for row in rows]}


def report_text(rows: list[RuleTrust], promote_after: int) -> str:
    """A plain table plus one line per disagreement (with its alert link)."""
    header = ("rule", "mode", "decisions", "agree", "disagree", "precision", "promote?")
    lines = [header]
    for row in rows:
        precision = "—" if row.precision is None else f"{row.precision:.0%}"
        lines.append((row.rule, row.mode, str(row.decisions), str(row.agreements),
                      str(len(row.disagreements)), precision,
                      "yes" if row.promote_suggested else ""))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
            for line in lines]
    for row in rows:
        if row.held:
            text.append(f"{row.rule}: shadow because {row.held}")
        text.extend(f"{row.rule}: disagreement on {d.alert} ({d.why}, by {d.by})"
                    f"{' ' + d.link if d.link else ''}" for d in row.disagreements)
    text.append(f"promotion is suggested after {promote_after} agreements and no disagreement")
    return "\n".join(text)


def demoted_lookup(state: TrustState) -> DemotedLookup:
    """What the decide stage's :class:`~secbot.pipeline.decide.Gatekeeper` asks per alert of
    an auto-close rule: why review demoted it, or None."""

    async def lookup(rule_id: str) -> str | None:
        demotion = await state.demotion(rule_id)
        return demotion_text(demotion) if demotion else None

    return lookup


#: ``rules validate`` warns this many days before an ``auto_close.expires``.
EXPIRY_WARNING_DAYS = 14


def expiry_warnings(rules: RuleSet, today: date) -> list[str]:
    """``path:line: warning: …`` for each ``auto_close.expires`` within
    :data:`EXPIRY_WARNING_DAYS` days or already past: printed by ``rules validate``, never an
    error (an expiry is a decision the reviewer made)."""
    out = []
    for rule in rules:
        spec = rule.rule.auto_close
        if spec is None or spec.expires is None:
            continue
        days = (spec.expires - today).days
        if days > EXPIRY_WARNING_DAYS:
            continue
        try:
            line = load_yaml(rule.path).line_of(("auto_close", "expires"))
        except (OSError, ValueError):
            line = 1
        when = spec.expires.isoformat()
        if days < 0:
            text = f"auto_close.expires {when} has passed: the rule behaves as shadow"
        else:
            text = (f"auto_close.expires {when} is "
                    f"{'today' if days == 0 else f'in {days} day' + ('s' if days > 1 else '')}")
        out.append(f"{rule.path}:{line}: warning: {text}")
    return out
