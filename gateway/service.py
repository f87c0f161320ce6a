"""The gateway's data path, composed: samples → signer → outbox → MQTT → backend ack → delete.

    source (poller, or any async iterable of MeterSample)
      └─ pump task ──► SampleBuffer (bounded, never blocks the source)
                          └─ writer task: sign + commit ──► Outbox (SQLite)
                                                               └─ publisher: batch, publish, resend
                                                                  ◄── ack from the backend: delete

Ownership: :meth:`GatewayService.run` owns every task and the outbox; it returns after
:meth:`stop` (or when cancelled) once the buffered samples are committed and the broker has been told
the gateway is going offline. Only the command line wires a real poller in; tests and benches hand
in their own iterable of samples.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterable
from dataclasses import dataclass
from pathlib import Path

from gateway.keys import DeviceKey
from gateway.mqtt_publisher import MqttSettings, PublisherStats, ReadingPublisher
from gateway.outbox import Outbox, OutboxSettings
from gateway.sample import MeterSample
from gateway.signer import OutboxWriter, SampleBuffer

__all__ = ["GatewayService", "ServiceStats"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceStats:
    samples_in: int
    samples_dropped: int
    readings_stored: int
    pending: int
    thinned: int
    epoch: int
    publisher: PublisherStats


class GatewayService:
    def __init__(
        self,
        *,
        key: DeviceKey,
        mqtt: MqttSettings,
        outbox: OutboxSettings,
        epoch_path: Path | None = None,
        samples: AsyncIterable[MeterSample] | None = None,
    ) -> None:
        self.key = key
        self.mqtt_settings = mqtt
        self.outbox_settings = outbox
        self.epoch_path = epoch_path
        self.samples = samples
        self.buffer = SampleBuffer(outbox.memory_queue)
        self.outbox: Outbox | None = None
        self.publisher: ReadingPublisher | None = None
        self.writer: OutboxWriter | None = None
        self.samples_in = 0
        self.ready = asyncio.Event()  # set once the outbox is open and the tasks run
        self._stop = asyncio.Event()

    def submit(self, sample: MeterSample) -> None:
        """Hand in one sample (never blocks). For sources that push rather than iterate."""
        self.samples_in += 1
        self.buffer.put(sample)

    def stop(self) -> None:
        self._stop.set()

    def stats(self) -> ServiceStats:
        assert self.outbox is not None and self.writer is not None and self.publisher is not None
        return ServiceStats(
            samples_in=self.samples_in,
            samples_dropped=self.buffer.dropped,
            readings_stored=self.writer.stored,
            pending=self.outbox.pending,
            thinned=self.outbox.thinned_total,
            epoch=self.outbox.epoch,
            publisher=self.publisher.stats,
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
            log.info(
                "gateway %s running: key %s, outbox %s (epoch %d, %d pending, %d thinned so far)",
                self.mqtt_settings.gateway_id,
                self.key.fingerprint,
                outbox.path,
                outbox.epoch,
                outbox.pending,
                outbox.thinned_total,
            )
            pump = asyncio.create_task(self._pump(self.samples), name="samples") if self.samples else None
            write = asyncio.create_task(writer.run(), name="outbox-writer")
            publish = asyncio.create_task(publisher.run(), name="publisher")
            tasks = [t for t in (pump, write, publish) if t is not None]
            self.ready.set()
            stopper = asyncio.create_task(self._stop.wait())
            try:
                # Run until stop(), cancellation, or a task failing (the source ending is fine).
                pending = set(tasks) | {stopper}
                while not self._stop.is_set():
                    done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        if task is not stopper and task.exception() is not None:
                            raise task.exception()  # type: ignore[misc]
                    if not (pending - {stopper}):
                        break
            finally:
                # Orderly: stop taking samples, commit what was taken, then say goodbye on MQTT.
                for owned in (pump, write):
                    if owned is not None:
                        owned.cancel()
                for owned in (pump, write):
                    if owned is not None:
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await owned
                with contextlib.suppress(Exception):
                    await asyncio.shield(writer.flush())
                publish.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await publish
                stopper.cancel()
                log.info(
                    "gateway %s stopped: %d readings pending in the outbox",
                    self.mqtt_settings.gateway_id,
                    outbox.pending,
                )
