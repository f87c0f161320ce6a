"""The real gateway service and the real backend ingest path, run inside the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from backend.ingest.pipeline import Ingest
from backend.ingest.receiver import BackendMqttSettings, Receiver
from backend.storage import Storage, open_storage
from gateway.outbox import COUNTER_BITS
from gateway.sample import MeterSample
from gridtokenx.reading import verify
from tests.support.ackkey import test_ack_key


async def wait_for(predicate: Callable[[], Awaitable[bool]], within_s: float, what: str, step: float = 0.1) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(step)
    raise AssertionError(f"timed out after {within_s} s waiting for {what}")


@contextlib.asynccontextmanager
async def running_backend(url: str, port: int, **mqtt: Any) -> AsyncIterator[tuple[Storage, Ingest, Receiver]]:
    storage = await open_storage(url)
    ingest = Ingest(storage)
    receiver = Receiver(BackendMqttSettings(host="127.0.0.1", port=port, **mqtt), ingest, ack_key=test_ack_key())
    task = asyncio.create_task(receiver.run())
    try:
        yield storage, ingest, receiver
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        ingest.close()
        await storage.close()


async def samples(
    meters: int, rounds: int, period_s: float = 0.0, start_ms: int = 1_760_000_000_000, prefix: str = "m"
) -> AsyncIterator[MeterSample]:
    """Deterministic cumulative counters: meter i, round r → import (r+1)*10+i Wh."""
    for r in range(rounds):
        for i in range(meters):
            yield MeterSample(
                meter_id=f"{prefix}{i}",
                timestamp_ms=start_ms + r * 1000,
                import_wh=(r + 1) * 10 + i,
                export_wh=r,
                power_w=500 + i,
            )
        if period_s:
            await asyncio.sleep(period_s)
        elif r % 50 == 0:
            await asyncio.sleep(0)


def check_exactly_once(
    rows: Iterable[Any],
    public_key: bytes,
    expected_per_meter: dict[str, int] | None = None,
) -> dict[str, list[int]]:
    """Every stored reading verifies; per meter, counters run 0..n-1 with no gap (per epoch)."""
    by_meter: dict[str, list[int]] = {}
    for row in rows:
        reading = verify(row.data, row.signature, public_key)
        assert (reading.meter_id, reading.seq) == (row.meter_id, row.seq)
        assert (reading.import_wh, reading.export_wh) == (row.import_wh, row.export_wh)
        by_meter.setdefault(row.meter_id, []).append(row.seq)
    for meter, seqs in by_meter.items():
        assert seqs == sorted(set(seqs)), f"{meter}: duplicate or unordered sequence numbers"
        epochs = sorted({s >> COUNTER_BITS for s in seqs})
        for epoch in epochs:
            counters = [s & ((1 << COUNTER_BITS) - 1) for s in seqs if s >> COUNTER_BITS == epoch]
            assert counters == list(range(len(counters))), f"{meter} epoch {epoch}: gap in {counters[:5]}…"
        if expected_per_meter is not None:
            assert len(seqs) == expected_per_meter[meter], f"{meter}: {len(seqs)} != {expected_per_meter[meter]}"
    return by_meter


def retained(port: int, topic: str, timeout: float = 5.0) -> dict[str, Any] | None:
    """The retained message on ``topic`` (JSON), as any MQTT subscriber sees it."""
    got: list[bytes] = []
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, *_: c.subscribe(topic, 1)
    client.on_message = lambda c, u, m: got.append(m.payload)
    client.connect("127.0.0.1", port)
    client.loop_start()
    deadline = time.monotonic() + timeout
    try:
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        client.disconnect()
        client.loop_stop()
    return json.loads(got[0]) if got else None
