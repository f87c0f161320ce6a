"""Logging that a flood cannot turn into a flood of lines: counted always, written rarely.

Ingest meets input it refuses by the thousand (a misconfigured gateway, a fuzzer, a device publishing
on topics it should not). Each event is counted by category — a reason of ours such as
``unknown_gateway`` or ``malformed:json``, never something a sender chose, so the set of categories is
small and fixed — and a line is written for the first event of a category and then at most once per
``interval_s``, saying how many were not written since. The counts are what ``metrics()`` reports.
"""

from __future__ import annotations

import logging
import time
from collections import Counter

__all__ = ["RateLimitedLog"]

# Categories beyond this many are counted together as "other": the table stays bounded even if a
# caller one day passes something a sender controls.
_MAX_CATEGORIES = 256


class RateLimitedLog:
    def __init__(self, logger: logging.Logger, interval_s: float = 60.0) -> None:
        self._log = logger
        self.interval_s = interval_s
        self.events: Counter[str] = Counter()  # every event, by category
        self.suppressed: Counter[str] = Counter()  # events whose line was not written
        self._last: dict[str, float] = {}  # category -> when its last line was written
        self._since: Counter[str] = Counter()  # category -> events not written since that line
        self.lines = 0

    def __call__(self, level: int, category: str, message: str, *args: object, exc_info: bool = False) -> None:
        if category not in self.events and len(self.events) >= _MAX_CATEGORIES:
            category = "other"
        self.events[category] += 1
        now = time.monotonic()
        last = self._last.get(category)
        if last is not None and now - last < self.interval_s:
            self.suppressed[category] += 1
            self._since[category] += 1
            return
        skipped = self._since.pop(category, 0)
        self._last[category] = now
        self.lines += 1
        if skipped:
            self._log.log(
                level,
                message + " (%d more of %s in the last %.0f s, not logged one by one)",
                *args,
                skipped,
                category,
                now - (last or now),
                exc_info=exc_info,
            )
        else:
            self._log.log(level, message, *args, exc_info=exc_info)
