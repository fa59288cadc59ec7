"""The answer claim of a question, and one left by a replica that stopped before saving it.

An answer (a click, the justification modal, or silence) is taken by one ``SET NX`` claim
``ask:answer:<uuid>``; only then is the record saved ``answered``. A replica killed between the
two (kill -9, OOM, a lost node) left a claim that refuses every later click and a record still
``asked``: without a way out the person's answer would be lost and the alert never resolved.

So the claim carries what it took (:class:`AnswerClaim`: the answer, who, when, the
justification) and a ``deadline`` (now + the ask lease): saving the record is one Redis write,
so a claim past its deadline over a record still ``asked`` was left by a replica that stopped,
never by one still saving. The due-question sweep every replica runs finds it (the answerer
puts the question in the due queue a lease ahead *before* claiming) and resolves it once across
replicas (a second claim, ``ask:resume:<uuid>:<deadline>``, lasting a lease): a known answer
(yes / no / timeout) is recorded and applied exactly as if it had been saved in time; an
unreadable one is released, the thread says the answer was lost, and the question stays open
until its timeout (the DM's buttons still answer it).
"""

from __future__ import annotations

from dataclasses import dataclass

from secbot.ask.base import ASK_KIND, AskContext
from secbot.domain.codec import decode, encode

#: Answers a claim can carry and SecBot can apply after the claimer stopped.
KNOWN = frozenset({"yes", "no", "timeout"})


def claim_name(uuid: str) -> str:
    """The claim that makes an answer the first (and only) one."""
    return f"{ASK_KIND}:answer:{uuid}"


@dataclass(frozen=True)
class AnswerClaim:
    """What an answer claim took: enough to finish the answer if its replica stops."""

    answer: str  # yes / no / timeout; "" when the claim could not be read
    by: str  # the Slack user who answered ("secbot" for silence)
    deadline: float  # UNIX seconds; 0.0: a claim from before leases (counts as stale)
    at: float = 0.0  # when it was answered
    justification: str = ""

    def to_value(self) -> str:
        return encode(self)

    @classmethod
    def parse(cls, text: str) -> AnswerClaim:
        """The claim's value; older replicas wrote ``<answer>:<user>`` without a deadline."""
        found = decode(cls, text)
        if found is not None:
            return found
        answer, _, by = text.partition(":")
        return cls(answer=answer if by else "", by=by, deadline=0.0)


async def held(ctx: AskContext, uuid: str) -> AnswerClaim | None:
    """The question's answer claim, None when nobody took it."""
    raw = await ctx.state.claimed_by(claim_name(uuid))
    return None if raw is None else AnswerClaim.parse(raw)


async def take_stale(ctx: AskContext, uuid: str, claim: AnswerClaim) -> bool:
    """True for exactly one caller once ``claim`` is past its deadline (its replica stopped
    before saving the answer). The resume claim lasts a lease: a replica stopping while it
    resolves it leaves it to the next one."""
    if claim.deadline > ctx.clock():
        return False  # its answerer is still saving it
    return await ctx.state.claim(f"{ASK_KIND}:resume:{uuid}:{claim.deadline}", "secbot",
                                 int(ctx.lease) + 1)
