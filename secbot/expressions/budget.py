"""One alert's evaluation budget: a work-unit counter plus a time allowance (DESIGN.md §8).

A rule is reviewed data, yet one expression ran for 0.25 s per *evaluation*, and an alert meets
many evaluations: each rule's ``match.when``, every I/O-call argument, ``auto_close``, each
route. The pipeline creates one :class:`EvalBudget` per alert and every evaluation of that
alert draws from it (it rides in :class:`~secbot.expressions.EvalContext` and
:meth:`RuleSet.match <secbot.rules.ruleset.RuleSet.match>`).

* **Work units** are charged by every syntax node and, *before* the call, by builtins in
  proportion to the size they touch (see :mod:`.costs`), so one ``sorted`` of a generated list
  is paid for before it runs.
* **Time** is the evaluation time added up over the alert's evaluations; waiting for enrichers
  between them does not count. It backs up the work count (a unit is an estimate). It is the
  evaluating thread's CPU time (``time.thread_time``), not the wall clock: on a loaded machine
  other processes and other threads would otherwise eat a cheap rule's allowance and stop it
  (no harm — it is only not auto-closed — but a false "budget exceeded" is noise).

Running out is sticky: :attr:`EvalBudget.exceeded` keeps the first reason and every later
evaluation fails at once with it, which is what keeps a stopped rule from auto-closing.
A budget is not thread-safe; an alert is evaluated on one thread at a time.
"""

from __future__ import annotations

from time import thread_time
from typing import TypeVar

from secbot.expressions.errors import BudgetExceededError, ExpressionTimeoutError
from secbot.expressions.limits import DEFAULT_TIMEOUT, DEFAULT_WORK

_E = TypeVar("_E", bound=BudgetExceededError)


class EvalBudget:
    """Work units and seconds one alert's expressions may spend, and what they spent.

    ``seconds`` None means "not chosen yet": the first expression evaluated with this budget
    sets it to the timeout it was compiled with (``SECBOT_EXPRESSION_TIMEOUT``), so a budget
    created without knowing the settings still honours them.
    """

    __slots__ = ("_started", "exceeded", "seconds", "spent_seconds", "spent_work", "work")

    def __init__(self, seconds: float | None = None, work: int = DEFAULT_WORK) -> None:
        if seconds is not None and not seconds > 0:
            raise ValueError("seconds must be positive")
        if work <= 0:
            raise ValueError("work must be positive")
        self.seconds = seconds
        self.work = work
        self.spent_work = 0
        self.spent_seconds = 0.0
        #: Why the budget ran out ("budget exceeded: …"), None while it has not.
        self.exceeded: str | None = None
        self._started: float | None = None

    def __repr__(self) -> str:
        return (f"EvalBudget(work {self.spent_work:,}/{self.work:,}, seconds "
                f"{self.spent_seconds:.4f}/{self.seconds}, exceeded={self.exceeded!r})")

    @property
    def remaining_work(self) -> int:
        return self.work - self.spent_work

    def adopt(self, seconds: float) -> None:
        """Use ``seconds`` as the time allowance unless one was chosen already."""
        if self.seconds is None:
            self.seconds = seconds

    def start(self) -> tuple[float, int]:
        """Begin one evaluation: its deadline (thread_time) and the work units left.

        Raises :class:`BudgetExceededError` right away when the budget already ran out.
        """
        if self.exceeded is not None:
            raise BudgetExceededError(self.exceeded)
        seconds = self.seconds if self.seconds is not None else DEFAULT_TIMEOUT
        self._started = now = thread_time()
        left = seconds - self.spent_seconds
        if left <= 0:
            raise self.out_of_time()
        return now + left, self.remaining_work

    def stop(self, work: int) -> None:
        """End the evaluation begun by :meth:`start`, which spent ``work`` units."""
        self.spent_work += work
        if self._started is not None:
            self.spent_seconds += thread_time() - self._started
            self._started = None

    def out_of_work(self) -> BudgetExceededError:
        """Record (and return, to raise) that the work units ran out."""
        return self._exceed(BudgetExceededError(
            f"budget exceeded: expressions needed more than {self.work:,} work units "
            "for this alert"))

    def out_of_time(self) -> ExpressionTimeoutError:
        """Record (and return, to raise) that the time allowance ran out."""
        seconds = self.seconds if self.seconds is not None else DEFAULT_TIMEOUT
        return self._exceed(ExpressionTimeoutError(
            f"budget exceeded: expressions took longer than {seconds:g} s for this alert"))

    def _exceed(self, error: _E) -> _E:
        if self.exceeded is None:
            self.exceeded = str(error)
        return error
