"""Faults a test can inject into a running daemon, to prove the watchdog notices them.

Off unless the environment says ``GRIDTOKENX_TEST_HOOKS=1`` (never set by the unit file). Then:

* ``SIGUSR1`` blocks the event loop — the daemon's main loop — for ``GRIDTOKENX_TEST_BLOCK_S``
  seconds (default 5), as a blocking call or a busy bug would;
* ``SIGUSR2`` stalls the outbox writer: its next commit never finishes, so samples pile up while
  polling goes on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable
from typing import Any

__all__ = ["install"]

log = logging.getLogger(__name__)


def install(loop: asyncio.AbstractEventLoop, current_service: Callable[[], Any]) -> bool:
    if os.environ.get("GRIDTOKENX_TEST_HOOKS") != "1":
        return False
    block_s = float(os.environ.get("GRIDTOKENX_TEST_BLOCK_S", "5"))

    def block_loop() -> None:
        log.warning("test hook: blocking the main loop for %.1f s", block_s)
        time.sleep(block_s)  # deliberately blocking: this is the fault

    def stall_writer() -> None:
        service = current_service()
        outbox = getattr(service, "outbox", None)
        if outbox is None:
            return
        never = asyncio.Event()

        async def append(*args: Any, **kwargs: Any) -> int:
            await never.wait()
            return 0

        log.warning("test hook: stalling the outbox writer")
        outbox.append = append

    loop.add_signal_handler(signal.SIGUSR1, block_loop)
    loop.add_signal_handler(signal.SIGUSR2, stall_writer)
    log.warning("test hooks enabled (GRIDTOKENX_TEST_HOOKS=1): SIGUSR1 blocks the loop, SIGUSR2 stalls the writer")
    return True
