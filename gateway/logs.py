"""Logging for the gateway's commands: one line per event, ours.

pymodbus logs its own view of every error (``Repeating....``, "No response received ...") on its
``pymodbus`` logger, and the gateway translates each of them into a MeterError it logs itself, naming
the meter, bus and register -- the same event twice, the library's line the less useful. So the library
loggers that only duplicate ours are raised to CRITICAL, except at DEBUG, where their frame-level view is
wanted.
"""

from __future__ import annotations

import logging
import os
import sys

__all__ = ["configure", "quiet_for_tools", "quiet_libraries"]

_DUPLICATING = ("pymodbus", "pymodbus.logging")


def quiet_libraries(level: int | None = None) -> None:
    """Silence library loggers whose messages our own lines already say (unless ``level`` -- default the
    root logger's -- is DEBUG)."""
    if level is None:
        level = logging.getLogger().getEffectiveLevel()
    debugging = level <= logging.DEBUG
    for name in _DUPLICATING:
        logging.getLogger(name).setLevel(logging.DEBUG if debugging else logging.CRITICAL)


def configure() -> int:
    """The daemon's logging: stderr (journald keeps it), level from ``GRIDTOKENX_LOG_LEVEL``."""
    level = getattr(logging, os.environ.get("GRIDTOKENX_LOG_LEVEL", "INFO").upper(), logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    quiet_libraries(level)
    return int(level)


def quiet_for_tools() -> None:
    """``read`` and ``scan`` print one line per meter or device, naming its error: the daemon's log lines
    for the same events would say it twice. Unless the level is DEBUG, only our CRITICAL lines remain."""
    quiet_libraries()
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("gateway").setLevel(logging.CRITICAL)
