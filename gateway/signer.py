"""Samples in, signed readings committed to the outbox out — without ever blocking the poller.

:class:`SampleBuffer` sits between polling and writing: ``put`` never waits; it is bounded, and when
the writer is stuck (disk stall, disk full) the oldest samples go first and are counted — but only
samples that have a newer one of the same meter behind them, so each meter's latest reading survives
(counters are cumulative: dropping an intermediate sample loses resolution, never energy).

:class:`OutboxWriter` takes what is buffered, signs it with the device key while assigning each
meter's next sequence number, and commits it in one transaction; then it keeps the outbox within
its byte bound. A full disk is a defined state, not a crash: the writer logs it once, thins the
backlog to make room, retries with backoff, and says when it has recovered.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable

from gateway.outbox import Outbox, OutboxFullError
from gateway.sample import MeterSample
from gridtokenx.reading import Reading, SignedReading

__all__ = ["OutboxWriter", "SampleBuffer"]

log = logging.getLogger(__name__)


class SampleBuffer:
    def __init__(self, maxlen: int) -> None:
        self._items: collections.deque[MeterSample] = collections.deque()
        self._per_meter: collections.Counter[str] = collections.Counter()
        self._maxlen = maxlen
        self._ready = asyncio.Event()
        self.dropped = 0

    def put(self, sample: MeterSample) -> None:
        if len(self._items) >= self._maxlen:
            self._drop_oldest_superseded(sample.meter_id)
        self._items.append(sample)
        self._per_meter[sample.meter_id] += 1
        self._ready.set()

    def _drop_oldest_superseded(self, incoming: str) -> None:
        # The oldest sample with a newer one of its meter behind it (``incoming`` counts as newer).
        for i, old in enumerate(self._items):
            if self._per_meter[old.meter_id] > 1 or old.meter_id == incoming:
                del self._items[i]
                self._forget(old.meter_id)
                if self.dropped == 0:
                    log.error(
                        "sample buffer full (%d): the outbox writer is stuck; dropping the oldest "
                        "intermediate samples (each meter's latest is kept)",
                        self._maxlen,
                    )
                self.dropped += 1
                return
        # Every buffered sample is some meter's only one: keep them all (bounded by the meter count).

    def _forget(self, meter_id: str) -> None:
        self._per_meter[meter_id] -= 1
        if self._per_meter[meter_id] <= 0:
            del self._per_meter[meter_id]

    def __len__(self) -> int:
        return len(self._items)

    async def get_batch(self, max_items: int) -> list[MeterSample]:
        """Wait until something is buffered, then take up to ``max_items`` oldest first."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        return self.take(max_items)

    def take(self, max_items: int) -> list[MeterSample]:
        batch = [self._items.popleft() for _ in range(min(max_items, len(self._items)))]
        for sample in batch:
            self._forget(sample.meter_id)
        if not self._items:
            self._ready.clear()
        return batch


class OutboxWriter:
    def __init__(
        self,
        outbox: Outbox,
        sign: Callable[[Reading], SignedReading],
        buffer: SampleBuffer,
        on_stored: Callable[[], None] = lambda: None,
        max_backoff_s: float = 30.0,
    ) -> None:
        self.outbox = outbox
        self.sign = sign
        self.buffer = buffer
        self.on_stored = on_stored
        self.max_backoff_s = max_backoff_s
        self.stored = 0
        self.disk_full_events = 0
        self._full = False
        self._current: asyncio.Future[None] | None = None

    @property
    def disk_full(self) -> bool:
        """The outbox is full and the writer is waiting for room (a known state, not a hang)."""
        return self._full

    async def run(self) -> None:
        """Forever: wait for samples, commit them. Cancel to stop; :meth:`flush` commits the rest."""
        while True:
            batch = await self.buffer.get_batch(self.outbox.settings.write_batch)
            # Shielded: a cancel must not land between COMMIT and our bookkeeping, or samples already
            # taken from the buffer could be lost (or, put back, be signed twice).
            self._current = asyncio.ensure_future(self._store(batch))
            await asyncio.shield(self._current)

    async def flush(self) -> None:
        """Finish the commit in progress and commit everything still buffered (orderly shutdown)."""
        if self._current is not None and not self._current.done():
            await self._current
        while len(self.buffer):
            await self._store(self.buffer.take(self.outbox.settings.write_batch))

    async def _store(self, batch: list[MeterSample]) -> None:
        delay = 0.25
        while True:
            try:
                self.stored += await self.outbox.append(batch, self.sign)
                break
            except OutboxFullError as exc:
                if not self._full:
                    self.disk_full_events += 1
                    log.error("%s — thinning the backlog to make room; polling continues into memory", exc)
                    self._full = True
                try:
                    freed = await self.outbox.thin(self.outbox.pending // 2)
                except OutboxFullError:
                    freed = 0
                if freed == 0:
                    log.debug("outbox still full, retrying in %.1f s", delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.max_backoff_s)
        if self._full:
            log.warning("outbox %s writable again: %d readings pending", self.outbox.path, self.outbox.pending)
            self._full = False
        if self.outbox.over_capacity():
            await self.outbox.thin()
        self.on_stored()
