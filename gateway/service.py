"""The gateway's data path, composed: samples → signer → outbox → MQTT → backend ack → delete.

    source (poller, or any async iterable of MeterSample)
      └─ pump task ──► telemetry (every measured value, rate-limited, not stored)
                  └──► SampleBuffer (bounded by count and bytes, never blocks the source)
                          └─ writer task: sign + commit ──► Outbox (SQLite)
                                                               └─ publisher: batch, publish, resend
                                                                  ◄── ack from the backend: delete

Ownership: :meth:`GatewayService.run` owns every task and the outbox; it returns after :meth:`stop` (or
when cancelled) once the buffered samples are committed and the broker has been told the gateway is
going offline. Only the command line wires a real poller in; tests and benches hand in their own
iterable of samples.

Stopping has a deadline whatever the parts do (:class:`StopDeadlines`, :data:`STOP_DEADLINE_S` in all):
the source gets ``source_s`` to stop (the poller's own shutdown closes its buses and cancels again and
again), the writer ``flush_s`` to commit what was polled (on a full disk it gives up and says exactly how
many samples were not stored), the publisher ``goodbye_s`` to tell the broker. Whatever has not stopped
by then is left behind and named in the log; the command line then exits anyway
(:mod:`gateway.cli_run`), the outbox being closed and every committed reading safe in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from gateway.disk import DiskState
from gateway.keys import DeviceKey
from gateway.mqtt_publisher import MqttSettings, PublisherStats, ReadingPublisher
from gateway.outbox import Outbox, OutboxSettings
from gateway.sample import MeterSample
from gateway.signer import OutboxWriter, SampleBuffer
from gateway.telemetry import MeterInfo, TelemetryPublisher, TelemetrySettings

__all__ = ["STOP_DEADLINE_S", "GatewayService", "SampleSource", "ServiceStats", "StopDeadlines"]

log = logging.getLogger(__name__)


@runtime_checkable
class SampleSource(Protocol):
    """A source that pushes samples (the poller): ``run(sink)`` calls ``sink`` with each sample until it
    is stopped by ``shutdown``, which returns within its own deadline."""

    async def run(self, sink: Callable[[MeterSample], None]) -> None: ...

    async def shutdown(self, runner: asyncio.Task[None] | None = None, *, within: float | None = None) -> bool: ...


@dataclass(frozen=True)
class StopDeadlines:
    source_s: float = 4.0  # the poller: stop flag, repeated cancellation, buses closed (it uses 3 s)
    flush_s: float = 5.0  # commit what was polled
    goodbye_s: float = 3.0  # retained "offline" status, MQTT disconnect

    @property
    def total_s(self) -> float:
        return self.source_s + self.flush_s + self.goodbye_s


STOP_DEADLINE_S = StopDeadlines().total_s
"""SIGTERM to return from :meth:`GatewayService.run`, at most (12 s; the command line adds its exit)."""


@dataclass(frozen=True)
class BufferStats:
    samples: int
    bytes: int
    max_bytes: int
    dropped: int


@dataclass(frozen=True)
class ServiceStats:
    samples_in: int
    samples_dropped: int
    readings_stored: int
    pending: int
    thinned: int
    epoch: int
    publisher: PublisherStats
    # "ok", "limited", "full" or "no_space" (gateway.disk.DiskState) -- repeated here for pages that
    # show only flat facts; ``disk`` has the figures.
    disk_state: str = "ok"
    disk: DiskState | None = None
    buffer: BufferStats | None = None
    commits: int = 0
    telemetry_sent: int = 0
    stopping: bool = False
    lost_at_stop: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class GatewayService:
    def __init__(
        self,
        *,
        key: DeviceKey,
        mqtt: MqttSettings,
        outbox: OutboxSettings,
        epoch_path: Path | None = None,
        samples: AsyncIterable[MeterSample] | SampleSource | None = None,
        telemetry: TelemetrySettings | None = None,
        meter_info: Callable[[str], MeterInfo] | None = None,
        deadlines: StopDeadlines = StopDeadlines(),
    ) -> None:
        self.key = key
        self.mqtt_settings = mqtt
        self.outbox_settings = outbox
        self.epoch_path = epoch_path
        self.samples = samples
        self.telemetry_settings = telemetry
        self.meter_info = meter_info or (lambda meter_id: MeterInfo(meter_id, "unknown"))
        self.deadlines = deadlines
        self.buffer = SampleBuffer(outbox.memory_queue, outbox.memory_bytes)
        self.outbox: Outbox | None = None
        self.publisher: ReadingPublisher | None = None
        self.writer: OutboxWriter | None = None
        self.telemetry: TelemetryPublisher | None = None
        self.samples_in = 0
        self.ready = asyncio.Event()  # set once the outbox is open and the tasks run
        self._stop = asyncio.Event()
        self._stop_requests = 0

    def submit(self, sample: MeterSample) -> None:
        """Hand in one sample (never blocks). For sources that push rather than iterate."""
        self.samples_in += 1
        if self.telemetry is not None:
            self.telemetry.offer(sample)
        self.buffer.put(sample)

    def stop(self) -> None:
        """Ask the service to stop (a signal handler calls this). Idempotent; a second call is logged."""
        self._stop_requests += 1
        if self._stop_requests == 2:
            log.warning("asked to stop again: already stopping, within %g s at most", self.deadlines.total_s)
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stats(self) -> ServiceStats:
        assert self.outbox is not None and self.writer is not None and self.publisher is not None
        disk = self.outbox.disk.snapshot()
        return ServiceStats(
            samples_in=self.samples_in,
            samples_dropped=self.buffer.dropped,
            readings_stored=self.writer.stored,
            pending=self.outbox.pending,
            thinned=self.outbox.thinned_total,
            epoch=self.outbox.epoch,
            publisher=self.publisher.stats,
            disk_state=disk.state,
            disk=disk,
            buffer=BufferStats(len(self.buffer), self.buffer.bytes, self.buffer.max_bytes, self.buffer.dropped),
            commits=self.writer.commits,
            telemetry_sent=0 if self.telemetry is None else self.telemetry.sent,
            stopping=self.stopping,
            lost_at_stop=self.writer.lost_at_stop,
        )

    async def _pump(self, source: AsyncIterable[MeterSample]) -> None:
        async for sample in source:
            self.submit(sample)
        log.info("sample source ended; readings already taken are still delivered")

    async def run(self) -> None:
        epoch_path = self.epoch_path or self.key.path.with_name(self.key.path.name + ".epoch")
        async with await Outbox.open(self.outbox_settings, epoch_path) as outbox:
            self.outbox = outbox
            publisher = ReadingPublisher(self.mqtt_settings, outbox, self.key, epoch_path)
            writer = OutboxWriter(outbox, self.key.sign, self.buffer, on_stored=publisher.notify)
            self.publisher, self.writer = publisher, writer
            if self.telemetry_settings is not None and self.telemetry_settings.enabled:
                assert self.mqtt_settings.gateway_id is not None
                self.telemetry = TelemetryPublisher(
                    self.telemetry_settings,
                    self.mqtt_settings.gateway_id,
                    lambda: publisher.connection,
                    self.meter_info,
                    root=self.mqtt_settings.topic_root,
                )
                publisher.on_connect_hooks.append(self.telemetry.on_connect)
            log.info(
                "gateway %s running: key %s, outbox %s (epoch %d, %d pending, %d thinned so far)",
                self.mqtt_settings.gateway_id,
                self.key.fingerprint,
                outbox.path,
                outbox.epoch,
                outbox.pending,
                outbox.thinned_total,
            )
            source = self.samples
            pump: asyncio.Task[None] | None = None
            if isinstance(source, SampleSource):
                # Pushed straight into the buffer: no queue, no task per sample.
                pump = asyncio.create_task(source.run(self.submit), name="samples")
            elif source is not None:
                pump = asyncio.create_task(self._pump(source), name="samples")
            write = asyncio.create_task(writer.run(), name="outbox-writer")
            publish = asyncio.create_task(publisher.run(), name="publisher")
            tasks = [t for t in (pump, write, publish) if t is not None]
            self.ready.set()
            stopper = asyncio.create_task(self._stop.wait(), name="stop-request")
            failure: BaseException | None = None
            try:
                # Run until stop(), cancellation, or a task failing (the source ending is fine).
                pending = set(tasks) | {stopper}
                while not self._stop.is_set():
                    done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        if task is not stopper and not task.cancelled() and task.exception() is not None:
                            failure = task.exception()
                            log.error("%s failed, stopping the gateway: %r", task.get_name(), failure)
                            raise failure  # type: ignore[misc]
                    if not (pending - {stopper}):
                        break
            finally:
                stopper.cancel()
                await self._shutdown(pump, write, publish, writer)
                log.info(
                    "gateway %s stopped: %d readings pending in the outbox",
                    self.mqtt_settings.gateway_id,
                    outbox.pending,
                )

    async def _shutdown(
        self,
        pump: asyncio.Task[None] | None,
        write: asyncio.Task[None],
        publish: asyncio.Task[None],
        writer: OutboxWriter,
    ) -> None:
        """Orderly, each step with its deadline: stop taking samples, commit what was taken, then say
        goodbye on MQTT. Never waits longer than :attr:`deadlines` in all."""
        d = self.deadlines
        self._stop.set()
        if pump is not None and isinstance(self.samples, SampleSource):
            # Stop flag, cancellation repeated, buses closed: returns within its own deadline.
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self.samples.shutdown(pump, within=d.source_s - 0.5))
            await _settle(pump, 0.5, "the sample source", recancel=False)
        elif pump is not None:
            pump.cancel()  # an iterator's own cleanup runs inside (Poller.samples: the poller's shutdown)
            await _settle(pump, d.source_s, "the sample source", recancel=False)
        write.cancel()
        await _settle(write, 0.5, "the outbox writer")
        # Shielded: a second cancellation of run() must not cut the commit of what was polled.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(writer.flush(within=d.flush_s))
        publish.cancel()  # its finally sends the retained "offline" status (2 s at most)
        await _settle(publish, d.goodbye_s, "the MQTT publisher", recancel=False)


async def _settle(task: asyncio.Task[None], within: float, what: str, *, recancel: bool = True) -> bool:
    """Wait at most ``within`` s for a cancelled ``task``; with ``recancel``, cancel it again every 0.25 s
    (one cancellation can be swallowed on its way in; tasks whose cleanup awaits -- the poller's shutdown,
    the MQTT goodbye -- are not interrupted). False, logged, when it is still running: the caller goes
    on. A cancellation of the caller while it waits here does not cut the shutdown short."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not task.done():
        remaining = deadline - loop.time()
        if remaining <= 0:
            log.error("%s did not stop within %g s; going on without it", what, within)
            return False
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({task}, timeout=min(0.25, remaining))
        if recancel and not task.done():
            task.cancel()
    if not task.cancelled() and task.exception() is not None:
        log.debug("%s ended with %r", what, task.exception())
    return True
