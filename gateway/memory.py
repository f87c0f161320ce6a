"""Keeping the daemon's resident memory small and flat on a 512 MB board (glibc malloc knobs).

Measured with bench/bench_soak_memory.py (100 meters, broker outage): Python's own allocations stay
flat; what grows is the C heap underneath — SQLite's page cache and paho's buffers in their threads'
malloc arenas, and freed-but-kept pages after bursts (a backlog drain, the first poll round).

* :func:`limit_arenas` — one malloc arena instead of one per thread (glibc makes up to 8 per core):
  the threads here (paho's network loop, aiosqlite's connection) allocate little and rarely, so
  contention costs nothing measurable, and each extra arena kept its own slack (-1.3 MB RSS).
* :func:`trim` — ``malloc_trim(0)`` hands free pages anywhere in the heap back to the kernel; called
  once a minute by the supervisor, so memory freed after a burst does not stay resident for years.

Both are no-ops where glibc is not the C library.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

__all__ = ["limit_arenas", "trim"]

log = logging.getLogger(__name__)

_M_ARENA_MAX = -8  # mallopt parameter number, from glibc's malloc.h


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt  # noqa: B018 - glibc only
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()


def limit_arenas(count: int = 1) -> bool:
    """Call before any thread starts (arenas are made when a thread first allocates)."""
    return _LIBC is not None and bool(_LIBC.mallopt(_M_ARENA_MAX, count))


def trim() -> bool:
    """True if memory was given back to the kernel."""
    return _LIBC is not None and bool(_LIBC.malloc_trim(0))
