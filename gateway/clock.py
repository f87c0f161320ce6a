"""How far the gateway's wall clock can be trusted, for the clock-source bits of every signed reading.

The kernel knows whether an NTP (or PTP/chrony) daemon has disciplined the system clock: adjtimex(2)
with no modes set only reads, and returns TIME_ERROR while the clock is unsynchronised. A Raspberry Pi
has no RTC, so until NTP syncs after boot its clock may be far off: readings then say UNSYNCED and the
backend orders them by sequence number alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import time
from collections.abc import Callable

from gridtokenx.reading import ClockSource

__all__ = ["SystemClockSource", "kernel_clock_synchronised"]

log = logging.getLogger(__name__)

_TIME_ERROR = 5  # adjtimex return value: clock not synchronised
_TIMEX_SIZE = 512  # struct timex is 208 bytes on 64-bit Linux; a larger zeroed buffer is harmless


def kernel_clock_synchronised() -> bool | None:
    """True/False from adjtimex(2); None where the call is unavailable (not Linux, seccomp)."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return None
    try:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        buf = ctypes.create_string_buffer(_TIMEX_SIZE)  # modes = 0: read only, needs no privilege
        state = int(libc.adjtimex(buf))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != _TIME_ERROR


class SystemClockSource:
    """A callable giving NTP while the kernel says the clock is synchronised, else UNSYNCED.

    Asked on every poll, so the answer is cached for ``recheck_s``: synchronisation is a slow state.
    """

    def __init__(
        self,
        *,
        recheck_s: float = 60.0,
        probe: Callable[[], bool | None] = kernel_clock_synchronised,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._recheck_s = recheck_s
        self._probe = probe
        self._monotonic = monotonic
        self._checked_at: float | None = None
        self._source = ClockSource.UNSYNCED

    def __call__(self) -> ClockSource:
        now = self._monotonic()
        if self._checked_at is None or now - self._checked_at >= self._recheck_s:
            synced = self._probe()
            source = ClockSource.NTP if synced else ClockSource.UNSYNCED
            if source != self._source or self._checked_at is None:
                log.info("system clock %s: readings are stamped clock=%s", "synchronised" if synced else
                         "not synchronised", source.name.lower())
            self._source, self._checked_at = source, now
        return self._source
