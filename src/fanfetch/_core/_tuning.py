"""Process-wide settings that only fanfetch's own processes choose for themselves.

A library must leave the interpreter alone (a service that uses ``Fetcher`` keeps its own
garbage-collector settings), but ``fanfetch run``, its ``--workers`` processes and
``fanfetch demo`` are programs of their own, and tune it.
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_THRESHOLD", "collect_young_rarely"]

YOUNG_THRESHOLD = 50_000


def collect_young_rarely() -> None:
    """Collect the young generation after 50,000 new objects instead of CPython's 700.

    With a hundred requests or more in flight, thousands of objects are alive (frames,
    responses, results waiting for their record), and each young collection walks them
    again: with the default, the collector took a sixth of a run's CPU (figures in
    ``benchmarks/FINDINGS.md``). A successful request makes no reference cycles (a test
    checks), so collecting less often costs no memory. A threshold of 0 (collection off)
    or one already higher is left as it is.
    """
    young, middle, old = gc.get_threshold()
    if 0 < young < YOUNG_THRESHOLD:
        gc.set_threshold(YOUNG_THRESHOLD, middle, old)
