"""Samples in, signed readings committed to the outbox out — without ever blocking the poller.

:class:`SampleBuffer` sits between polling and writing: ``put`` never waits; it is bounded by a count
and by bytes, and when the writer is stuck (disk stall, disk full) the oldest samples go first and are
counted — but only samples that have a newer one of the same meter behind them, so each meter's latest
reading survives (counters are cumulative: dropping an intermediate sample loses resolution, never
energy). Buffered samples carry only what gets signed: the full set of measured values (for the status
page and MQTT telemetry) is dropped on the way in, which keeps a sample at a few hundred bytes.

:class:`OutboxWriter` takes what is buffered, signs it with the device key while assigning each
meter's next sequence number, and commits it in one transaction — at most every ``commit_interval_s``,
so the polls of a second share one commit and one fsync; then it keeps the outbox within its byte
bound. A full disk is a defined state, not a crash: the outbox logs it once, thins the backlog to make
room (:meth:`gateway.outbox.Outbox.make_room`), the writer retries with backoff, and the outbox says when
it has recovered. Stopping flushes within a deadline and says exactly how many samples were not stored.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Mapping

from gateway.disk import mib
from gateway.outbox import Outbox, OutboxError, OutboxFullError
from gateway.sample import MeterSample
from gridtokenx.reading import Reading, SignedReading

__all__ = ["OutboxWriter", "SampleBuffer", "sample_bytes"]

log = logging.getLogger(__name__)

_NO_VALUES: Mapping[str, float] = {}


def sample_bytes(sample: MeterSample) -> int:
    """What a buffered (slim) sample costs in memory, roughly: the object, its meter id, its problems."""
    return 200 + len(sample.meter_id) + sum(60 + len(p) for p in sample.problems)


class SampleBuffer:
    def __init__(self, maxlen: int, max_bytes: int = 8 * 1024 * 1024) -> None:
        self._items: collections.deque[MeterSample] = collections.deque()
        self._per_meter: collections.Counter[str] = collections.Counter()
        self._maxlen = maxlen
        self.max_bytes = max_bytes
        self.bytes = 0
        self._ready = asyncio.Event()
        self.dropped = 0

    def put(self, sample: MeterSample) -> None:
        if sample.values:
            sample = dataclasses.replace(sample, values=_NO_VALUES)
        size = sample_bytes(sample)
        while len(self._items) >= self._maxlen or (self._items and self.bytes + size > self.max_bytes):
            if not self._drop_oldest_superseded(sample.meter_id):
                break
        self._items.append(sample)
        self.bytes += size
        self._per_meter[sample.meter_id] += 1
        self._ready.set()

    def _drop_oldest_superseded(self, incoming: str) -> bool:
        # The oldest sample with a newer one of its meter behind it (``incoming`` counts as newer).
        for i, old in enumerate(self._items):
            if self._per_meter[old.meter_id] > 1 or old.meter_id == incoming:
                del self._items[i]
                self.bytes -= sample_bytes(old)
                self._forget(old.meter_id)
                if self.dropped == 0:
                    log.error(
                        "sample buffer full (%d samples, %s of its %s bound): the outbox writer is stuck; "
                        "dropping the oldest intermediate samples (each meter's latest is kept)",
                        len(self._items) + 1, mib(self.bytes), mib(self.max_bytes),
                    )
                self.dropped += 1
                return True
        # Every buffered sample is some meter's only one: keep them all (bounded by the meter count).
        return False

    def _forget(self, meter_id: str) -> None:
        self._per_meter[meter_id] -= 1
        if self._per_meter[meter_id] <= 0:
            del self._per_meter[meter_id]

    def __len__(self) -> int:
        return len(self._items)

    async def wait(self) -> None:
        """Until something is buffered."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()

    async def get_batch(self, max_items: int) -> list[MeterSample]:
        """Wait until something is buffered, then take up to ``max_items`` oldest first."""
        await self.wait()
        return self.take(max_items)

    def take(self, max_items: int) -> list[MeterSample]:
        batch = [self._items.popleft() for _ in range(min(max_items, len(self._items)))]
        for sample in batch:
            self.bytes -= sample_bytes(sample)
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
        self.commits = 0
        self.disk_full_events = 0
        self.lost_at_stop = 0
        self._full = False
        self._current: asyncio.Future[None] | None = None

    @property
    def disk_full(self) -> bool:
        """The outbox is full and the writer is waiting for room (a known state, not a hang)."""
        return self._full

    async def run(self) -> None:
        """Forever: wait for samples, commit them. Cancel to stop; :meth:`flush` commits the rest."""
        interval = self.outbox.settings.commit_interval_s
        batch_size = self.outbox.settings.write_batch
        while True:
            await self.buffer.wait()
            # Polls arriving within the commit interval after the first share a transaction: one
            # commit (and fsync, and wake-up) for the burst of a polling slot, not one per meter.
            if interval > 0 and len(self.buffer) < batch_size:
                await asyncio.sleep(interval)
            batch = self.buffer.take(batch_size)
            # Shielded: a cancel must not land between COMMIT and our bookkeeping, or samples already
            # taken from the buffer could be lost (or, put back, be signed twice).
            self._current = asyncio.ensure_future(self._store(batch))
            await asyncio.shield(self._current)

    async def flush(self, within: float | None = None) -> int:
        """Finish the commit in progress and commit everything still buffered (orderly shutdown), for at
        most ``within`` seconds. Returns how many samples could not be committed (logged at ERROR)."""
        loop = asyncio.get_running_loop()
        deadline = None if within is None else loop.time() + within
        pending_batch = 0
        reason = ""
        try:
            if self._current is not None and not self._current.done():
                await self._wait(self._current, deadline)
            while len(self.buffer) and not (deadline is not None and loop.time() >= deadline):
                batch = self.buffer.take(self.outbox.settings.write_batch)
                pending_batch = len(batch)
                self._current = asyncio.ensure_future(self._store(batch, deadline=deadline))
                await self._wait(self._current, deadline)
                pending_batch = 0
        except (OutboxError, TimeoutError) as exc:
            reason = str(exc) or "no room on the disk before the deadline"
        lost = len(self.buffer) + pending_batch
        if self._current is not None and not self._current.done():
            self._current.cancel()
        if lost:
            self.lost_at_stop = lost
            log.error(
                "stopping with %d polled samples not committed to the outbox (%s): they were never stored "
                "or signed", lost, reason or f"not done within {within:g} s",
            )
        return lost

    @staticmethod
    async def _wait(future: asyncio.Future[None], deadline: float | None) -> None:
        if deadline is None:
            await future
            return
        remaining = deadline - asyncio.get_running_loop().time()
        done, _ = await asyncio.wait({future}, timeout=max(0.0, remaining))
        if not done:
            raise TimeoutError()
        future.result()

    async def _store(self, batch: list[MeterSample], deadline: float | None = None) -> None:
        loop = asyncio.get_running_loop()
        delay = 0.25
        attempt = 0
        while True:
            try:
                self.stored += await self.outbox.append(batch, self.sign)
                self.commits += 1
                break
            except OutboxFullError:
                if not self._full:
                    self.disk_full_events += 1
                    self._full = True
                    log.log(
                        logging.WARNING if self.disk_full_events == 1 else logging.DEBUG,
                        "outbox full: polling goes on; %d samples (%s of the %s bound) wait in memory",
                        len(self.buffer) + len(batch), mib(self.buffer.bytes), mib(self.buffer.max_bytes),
                    )
                try:
                    freed = await self.outbox.make_room(attempt)
                except OutboxError as exc:
                    log.debug("making room failed: %s", exc)
                    freed = 0
                attempt += 1
                if freed == 0 and attempt > 1:
                    if deadline is not None and loop.time() + delay > deadline:
                        raise
                    log.debug("outbox still full, retrying in %.1f s or when acknowledged readings are deleted", delay)
                    self.outbox.room_freed.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(delay):
                            await self.outbox.room_freed.wait()
                    delay = min(delay * 2, self.max_backoff_s)
        if self._full:
            self._full = False
            await self.outbox.writable_again()
        if self.outbox.over_capacity():
            await self.outbox.thin()
        self.on_stored()
