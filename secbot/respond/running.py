"""A response action while it runs, and one whose replica stopped mid-run (kill -9, OOM, a lost
node): such a proposal would otherwise stay ``running`` for ever, the approver seeing nothing
happen and nobody able to try again.

Running: before the API is called the proposal is saved ``running`` with a ``deadline`` (now +
:attr:`ResponseApis.lease`) and put in the ``respond:running`` due queue; it leaves the queue
when the run ends (done, or failed with Approve back). The API call itself is bounded well
inside the lease, so a proposal still ``running`` after its deadline was left by a replica that
stopped, never by one that is still calling.

Taken over (by the sweep every replica runs, or by an approver's click on Approve), once per
attempt across replicas (a claim): the first time, SecBot runs it again — each response API is
safe to run twice, "already in that state" counting as done (see :mod:`secbot.respond.calls`)
— and says so in the thread and the audit. Found stale again (the re-run's replica stopped
too), the sweep stops guessing: the thread says the outcome is unknown and which console to
check, and Approve / Deny come back, so a person decides.
"""

from __future__ import annotations

from dataclasses import replace

import structlog

from secbot.domain.status import AuditAction
from secbot.resilience.loop import run_every
from secbot.respond.base import RespondContext
from secbot.respond.proposal import APPROVE, DENY, RUNNING_QUEUE, Proposal

log = structlog.stdlib.get_logger(__name__)

SWEEPER = "secbot"  # the actor of a take-over nobody clicked
_KIBANA = "Kibana → Security → Manage → Endpoints (the host's response actions history)"
_OKTA = "the Okta Admin Console → Directory → People (the user's status)"
_GCP = "the Google Cloud console → IAM & Admin → Service accounts → Keys"
CONSOLES = {"isolate_host": _KIBANA, "release_host": _KIBANA, "suspend_user": _OKTA,
            "unsuspend_user": _OKTA, "disable_sa_key": _GCP, "enable_sa_key": _GCP}


def approved_by(p: Proposal) -> str:
    """How the message names who approved ``p``."""
    if p.approver == SWEEPER:
        return "SecBot automatically (inside SECBOT_AUTO_APPROVE_HOURS)"
    return f"<@{p.approver}>"


def stale(ctx: RespondContext, p: Proposal) -> bool:
    """``p`` is ``running`` past its lease: its replica stopped (a record from before leases,
    with no deadline, counts as stale too)."""
    return p.state == "running" and p.deadline <= ctx.now().timestamp()


async def execute(ctx: RespondContext, p: Proposal, who: str, *,
                  already_ok: bool = False) -> None:
    """Run the approved ``p`` (``p.approver`` set) under a lease, then say how it went."""
    deadline = ctx.now().timestamp() + ctx.apis.lease
    p = replace(p, state="running", deadline=deadline)
    await ctx.save(p)
    await ctx.state.schedule(RUNNING_QUEUE, p.id, deadline)
    await ctx.show(p, f"Running… approved by {who}")
    p = replace(await ctx.run(p, p.action, p.approver, already_ok=already_ok), deadline=0.0)
    await ctx.save(p)
    await ctx.state.unschedule(RUNNING_QUEUE, p.id)
    if p.state == "failed":  # an approver may try again: the claim is given back
        await ctx.state.release(f"{p.id}:decided")
        await ctx.show(p, f"{p.note} · approved by {who}; not done", APPROVE, DENY)
        return
    await ctx.finished(p, who)


async def take_over(ctx: RespondContext, p: Proposal, by: str) -> bool:
    """Resolve the stale ``p`` once across replicas; ``by`` is :data:`SWEEPER` or the approver
    who clicked Approve. False when it is not stale or someone else has it."""
    # The claim lasts a lease: a replica stopping between claim and save leaves it to the next.
    if not stale(ctx, p) or not await ctx.state.claim(f"{p.id}:resume:{p.resumed}", by,
                                                      int(ctx.apis.lease)):
        return False
    if p.resumed and by == SWEEPER:
        await _unknown(ctx, p)
        return True
    who = approved_by(p)
    p = replace(p, resumed=p.resumed + 1, approver=p.approver if by == SWEEPER else by)
    await ctx.audit(p, AuditAction.RESPONSE_FAILED,
                    "interrupted: the replica running it stopped before the API answered "
                    "(its lease ended); running it again once", by, outcome="interrupted")
    again = who if by == SWEEPER else f"<@{by}> (approved again)"
    await ctx.reply(p, f":arrows_counterclockwise: SecBot stopped while running {p.words} "
                       f"{p.target} (approved by {who}) and never heard the API's answer. "
                       f"Running it again once for {again}: running it twice is harmless, "
                       "and already done counts as done.")
    await execute(ctx, p, approved_by(p), already_ok=True)
    return True


async def _unknown(ctx: RespondContext, p: Proposal) -> None:
    """Interrupted twice: SecBot does not guess; a person checks the console and decides."""
    console, who = CONSOLES[p.action], approved_by(p)
    note = (f":grey_question: Outcome unknown (SecBot stopped twice while running it): "
            f"check {console}")
    p = replace(p, state="failed", note=note, deadline=0.0)
    await ctx.save(p)
    await ctx.audit(p, AuditAction.RESPONSE_FAILED,
                    f"outcome unknown: interrupted twice; check {console}", SWEEPER,
                    outcome="unknown")
    await ctx.state.unschedule(RUNNING_QUEUE, p.id)
    await ctx.state.release(f"{p.id}:decided")
    await ctx.reply(p, f":grey_question: {p.words.capitalize()} {p.target}: outcome unknown — "
                       f"SecBot stopped twice while running it (approved by {who}). Check "
                       f"{console}; Approve is back to try again. The alert is not marked "
                       "contained.")
    await ctx.show(p, f"{note} · approved by {who}", APPROVE, DENY)


class RunningSweep:
    """The loop every replica runs: proposals left ``running`` past their lease are taken
    over (each by one replica: the due queue hands it to one, the claim makes it once)."""

    def __init__(self, ctx: RespondContext) -> None:
        self.ctx = ctx

    async def run(self, interval: float = 2.0) -> None:
        await run_every(self.tick, interval, what="stale response actions")

    async def tick(self) -> int:
        """Take over every stale run this replica can; returns how many it took."""
        ctx, taken = self.ctx, 0
        now = ctx.now().timestamp()
        for pid in await ctx.state.due(RUNNING_QUEUE, now):
            if not await ctx.state.take(RUNNING_QUEUE, pid, now, ctx.apis.lease):
                continue  # another replica has it
            try:
                p = await ctx.load(pid)
                if p is None or p.state != "running":  # it ended; only the queue entry stayed
                    await ctx.state.unschedule(RUNNING_QUEUE, pid)
                elif await take_over(ctx, p, SWEEPER):
                    taken += 1
            except Exception:  # stays queued: due again after the lease
                log.exception("stale response action %s: take-over failed; retried later", pid)
        return taken
