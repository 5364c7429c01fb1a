"""Guards: what stops a run before its input ends, and what fails it at the end.

``--limit`` (requests started, pages included, retries not), ``--deadline`` (no new request
after it) and ``--stop-if`` (a condition over the live counters, checked as each record is
made) stop a run as a first Ctrl-C does: no new request starts, those in flight finish,
the output stays whole and ``--resume`` does the rest. ``--fail-if`` conditions are checked
over the final counters. Either makes the exit status 3.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .._core._conditions import Condition
from .._core._exceptions import ThresholdCrossed
from .._observe._summary import Stats

if TYPE_CHECKING:
    from .._core._config import Guards
    from .._core._models import Result
    from .._core._types import Clock

__all__ = ["Guard"]


class Guard:
    """One run's guards, and the counters their conditions read."""

    def __init__(self, guards: Guards, *, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._guards = guards
        self._limit = guards.limit
        self._deadline = None if guards.deadline is None else clock() + guards.deadline
        self._max_cost = guards.max_cost
        self.spent = 0.0  # the cost of the attempts started, corrected by --usage
        self._stop_if = None if guards.stop_if is None else Condition(guards.stop_if)
        self._fail_if = tuple(Condition(text, "fail_if") for text in guards.fail_if)
        self.started = 0  # requests and pages started
        self.stopped_by: str | None = None  # limit, deadline or stop_if, with what it was
        self.on_stop: Callable[[], None] = lambda: None  # the engine's stop
        self._stats = Stats(clock=clock)  # the summary's own counts, for the conditions
        self._in_a_row = 0  # records not ok in a row: the one count the summary lacks

    @property
    def counts_cost(self) -> bool:
        """Whether attempts are charged to it (``--max-cost``)."""
        return self._max_cost is not None

    @property
    def needed(self) -> bool:
        """Whether a run needs this guard at all (else the engine keeps none)."""
        return self._guards.any

    def may_start(self) -> bool:
        """Whether one more request (or page) may start; the first no stops the run."""
        if self.stopped_by is not None:
            return False
        if self._limit is not None and self.started >= self._limit:
            self._stop(f"limit {self._limit}")
            return False
        if self._deadline is not None and self._clock() >= self._deadline:
            self._stop("deadline")
            return False
        self.started += 1
        return True

    def may_spend(self, cost: float | None) -> bool:
        """Whether an attempt of ``cost`` may start within ``--max-cost`` (charged when so);
        the first no stops the run."""
        if self._max_cost is None or cost is None:
            return True
        if self.stopped_by is not None or self.spent + cost > self._max_cost:
            if self.stopped_by is None:
                self._stop(f"max_cost {self._max_cost:g}")
            return False
        self.spent += cost
        return True

    def correct(self, by: float) -> None:
        """What an answer said it really cost, against what was charged (``--usage``)."""
        self.spent += by

    def finished(self, result: Result) -> None:
        """A record was made: the counters move, and ``stop_if`` is asked."""
        self._stats.finished(result)
        self._in_a_row = 0 if result.ok else self._in_a_row + 1
        stop_if = self._stop_if
        if stop_if is not None and self.stopped_by is None and stop_if.holds(self.counters()):
            self._stop(f"stop_if {stop_if.text}")

    def counters(self) -> dict[str, float]:
        """The names a condition may use, as they stand now (``_conditions.NAMES``)."""
        stats = self._stats
        done, failed = stats.done, stats.failed
        statuses = stats.statuses
        return {
            "done": done, "ok": stats.ok, "failed": failed,
            "error_rate": failed / done if done else 0.0,
            "status_4xx": sum(n for s, n in statuses.items() if 400 <= s < 500),
            "status_429": statuses[429],
            "status_5xx": sum(n for s, n in statuses.items() if 500 <= s < 600),
            "consecutive_errors": self._in_a_row,
            "elapsed_s": self._clock() - stats.started,
            "p99_ms": stats.latency.quantile(0.99) or 0.0,
        }  # fmt: skip

    def crossed(self) -> list[str]:
        """The ``fail_if`` conditions true of the counters now (at the end of the run)."""
        counters = self.counters()
        return [condition.text for condition in self._fail_if if condition.holds(counters)]

    def raise_if_crossed(self) -> None:
        """From Python, what exit status 3 is on the command line: ``ThresholdCrossed``."""
        if crossed := self.crossed():
            raise ThresholdCrossed(crossed)

    def _stop(self, reason: str) -> None:
        self.stopped_by = reason
        # From Python the results simply end; the log says why (the command line's summary
        # and exit status 3 do there). INFO: unseen unless the program asked for it.
        logging.getLogger("fanfetch").info("stopped by %s: no new request starts", reason)
        self.on_stop()
