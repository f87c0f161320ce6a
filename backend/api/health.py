"""``/healthz``: database, broker, chain and Redis each reported with how long the check took.

Every check has a deadline, so a hung dependency shows as failing instead of hanging the probe. The
answer is 200 when everything configured works, 503 otherwise; a dependency that is not configured
(no Redis: in-process feed) is reported as such and does not fail the probe.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["Check", "run_checks", "tcp_check"]

Check = Callable[[], Awaitable[str]]  # returns a short detail; raises if unhealthy
CHECK_TIMEOUT_S = 2.0


def tcp_check(host: str, port: int) -> Check:
    async def check() -> str:
        _, writer = await asyncio.open_connection(host, port)
        writer.close()
        await writer.wait_closed()
        return f"{host}:{port} accepts connections"

    return check


async def _one(check: Check | None) -> dict[str, Any]:
    if check is None:
        return {"status": "not_configured"}
    start = time.perf_counter()
    try:
        detail = await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
    except TimeoutError:
        return {"status": "failing", "detail": f"no answer within {CHECK_TIMEOUT_S} s"}
    except Exception as exc:
        return {"status": "failing", "detail": f"{type(exc).__name__}: {exc}"[:300]}
    return {"status": "ok", "detail": detail, "ms": round((time.perf_counter() - start) * 1000, 1)}


async def run_checks(checks: dict[str, Check | None]) -> tuple[bool, dict[str, Any]]:
    results = await asyncio.gather(*(_one(c) for c in checks.values()))
    report = dict(zip(checks, results, strict=True))
    healthy = all(r["status"] != "failing" for r in results)
    return healthy, report
