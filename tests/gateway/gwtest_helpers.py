"""Helpers for the gateway's Modbus tests: simulated meters on a real TCP server or a pty pair, and
the expected integer Wh for what a meter's registers hold.

A module with its own name rather than conftest, so it does not clash with other packages' conftests.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import ROUND_HALF_EVEN, Decimal
from itertools import pairwise
from typing import Any

from gateway.models import get_model
from gateway.poller import MeterSpec
from gateway.sample import MeterSample

READY_RE = re.compile(r"meter-sim ready: (tcp (?P<host>\S+):(?P<port>\d+)|rtu (?P<device>\S+))")


def spec(meter_id: str, model: str, unit: int, bus: str, **kwargs: Any) -> MeterSpec:
    return MeterSpec(meter_id, get_model(model), unit, bus, **kwargs)


def expected_wh(truth: dict[str, float], key: str, model: str) -> int:
    """What the gateway must report for ``key`` ("import"/"export"), from the simulator's own account
    of its registers: SDM registers hold float32 kWh, whose exact value x 1000 rounds half to even;
    SunSpec model 203 registers hold integer Wh (times 10**TotWh_SF) already."""
    if model == "sunspec":
        value = truth[f"{key}_wh"]
        assert value == int(value)
        return int(value)
    return int((Decimal(truth[f"{key}_kwh"]) * 1000).to_integral_value(ROUND_HALF_EVEN))


def gaps_s(samples: Sequence[MeterSample]) -> list[float]:
    times = [s.timestamp_ms / 1000 for s in samples]
    return [b - a for a, b in pairwise(times)]


async def drain(queue: asyncio.Queue[MeterSample]) -> dict[str, list[MeterSample]]:
    by_meter: dict[str, list[MeterSample]] = {}
    while not queue.empty():
        sample = queue.get_nowait()
        by_meter.setdefault(sample.meter_id, []).append(sample)
    return by_meter


async def run_for(poller: Any, seconds: float) -> dict[str, list[MeterSample]]:
    """Run ``poller`` for ``seconds``, cancel it cleanly, return its samples per meter."""
    queue: asyncio.Queue[MeterSample] = asyncio.Queue()
    task = asyncio.create_task(poller.run(queue))
    await asyncio.sleep(seconds)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    assert task.cancelled()
    return await drain(queue)


@contextmanager
def meter_sim_process(args: Sequence[str], *, timeout: float = 20.0) -> Iterator[dict[str, str]]:
    """Start ``gridtokenx meter-sim ARGS`` and yield where it listens (host/port or device)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "gridtokenx", "meter-sim", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        deadline_lines = 50
        found: dict[str, str] | None = None
        for _ in range(deadline_lines):
            line = _readline(proc, timeout)
            if line is None:
                break
            match = READY_RE.search(line)
            if match:
                found = {k: v for k, v in match.groupdict().items() if v is not None}
                break
        if found is None:
            proc.kill()
            _, err = proc.communicate(timeout=5)
            raise AssertionError(f"meter-sim did not become ready: {err}")
        yield found
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def _readline(proc: subprocess.Popen[str], timeout: float) -> str | None:
    import selectors

    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            return None
    line = proc.stdout.readline()
    return line or None


def run_gridtokenx(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gridtokenx", *args], capture_output=True, text=True, timeout=timeout
    )
