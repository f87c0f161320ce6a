"""The backend's MQTT side: take readings messages, hand them to ingest, publish the acks.

Delivery from the broker is made durable too: the backend keeps a persistent session (fixed client
id, ``clean_session=False``) so the broker queues messages while it is down, and it PUBACKs a message
to the broker only after ingest has committed it and the ack is on its way (paho's manual ack). A
message whose processing fails (database down) is retried here until it succeeds; nothing after it
is taken meanwhile, so the broker's in-flight limit (20 by default) pushes back instead of us
buffering without bound.
"""

from __future__ import annotations

import asyncio
import logging

import paho.mqtt.client as paho
from pydantic import BaseModel, ConfigDict, Field

from backend.ingest.pipeline import Ingest, Prepared
from backend.storage import QuarantineRow, StorageError
from gridtokenx.batch import TOPIC_ROOT, BatchFormatError, ack_topic, decode_status, encode_ack, parse_topic
from gridtokenx.mqtt import BrokerSettings, MqttConnection, MqttError

__all__ = ["BackendMqttSettings", "Receiver"]

log = logging.getLogger(__name__)

# A message and the task verifying it (its Prepared, or None for anything but a readings message).
_Verifying = tuple[paho.MQTTMessage, "asyncio.Future[Prepared | None]"]


class BackendMqttSettings(BrokerSettings):
    client_id: str = "gridtokenx-backend"
    topic_root: str = TOPIC_ROOT
    # With several backend processes, a shared subscription group splits gateways' messages among them.
    shared_group: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]+$")
    # Messages the broker may have in flight to us before we PUBACK (bounds our memory).
    max_inflight: int = Field(default=20, ge=1, le=1000)


class Receiver:
    def __init__(self, settings: BackendMqttSettings, ingest: Ingest) -> None:
        self.settings = settings
        self.ingest = ingest
        self._queue: asyncio.Queue[paho.MQTTMessage] = asyncio.Queue()
        self.processed = 0
        self.connection = MqttConnection(
            settings,
            settings.client_id,
            clean_session=False,
            subscriptions=self._topics(),
            on_message=self._queue.put_nowait,
            manual_ack=True,
            max_inflight=settings.max_inflight,
            max_queued=10_000,
        )

    def _topics(self) -> list[tuple[str, int]]:
        root = self.settings.topic_root
        share = f"$share/{self.settings.shared_group}/" if self.settings.shared_group else ""
        return [(f"{share}{root}/+/readings", 1), (f"{root}/+/status", 1)]

    async def run(self) -> None:
        """Two stages in order: verify the next messages (CPU, worker threads) while the oldest one is
        stored and acknowledged (database and network). Up to three messages are verified at once, so
        the worker threads always have a batch to work on while the loop parses the next message or
        stores the previous one; they are stored and acknowledged strictly in arrival order. The
        hand-over queue is small, so at most a few verified messages wait in memory; the broker's
        in-flight limit bounds the rest."""
        conn = self.connection
        verified: asyncio.Queue[_Verifying] = asyncio.Queue(maxsize=2)
        try:
            async with conn, asyncio.TaskGroup() as tg:
                tg.create_task(self._verify_stage(verified), name="backend-verify")
                tg.create_task(self._store_stage(conn, verified), name="backend-store")
        finally:
            while not verified.empty():
                verified.get_nowait()[1].cancel()

    async def _verify_stage(self, out: asyncio.Queue[_Verifying]) -> None:
        while True:
            message = await self._queue.get()
            task = asyncio.ensure_future(self._prepare(message))
            try:
                await out.put((message, task))
            except BaseException:
                task.cancel()
                raise

    async def _prepare(self, message: paho.MQTTMessage) -> Prepared | None:
        try:
            gateway_id, kind = parse_topic(message.topic, self.settings.topic_root)
        except BatchFormatError:
            return None
        if kind != "readings":
            return None
        delay = 0.5
        while True:
            try:
                return await self.ingest.prepare(gateway_id, bytes(message.payload))
            except StorageError as exc:  # looking up the gateway's key failed
                log.error("verifying %s failed (%s): retrying in %.1f s", message.topic, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _store_stage(self, conn: MqttConnection, verified: asyncio.Queue[_Verifying]) -> None:
        while True:
            message, task = await verified.get()
            try:
                prepared = await task
            except BaseException:
                task.cancel()
                raise
            await self._process(conn, message, prepared)

    async def _process(self, conn: MqttConnection, message: paho.MQTTMessage, prepared: Prepared | None) -> None:
        delay = 0.5
        refused = 0
        while True:
            try:
                await self._handle(conn, message, prepared)
                break
            except StorageError as exc:
                if not exc.transient:
                    refused += 1
                    if refused >= 3 and await self._give_up(message, exc):
                        break
                log.error("processing %s failed (%s): retrying in %.1f s", message.topic, exc, delay)
            except MqttError as exc:
                log.error("processing %s failed (%s): retrying in %.1f s", message.topic, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
        if message.qos > 0:
            conn.ack(message.mid, message.qos)
        self.processed += 1

    async def _give_up(self, message: paho.MQTTMessage, exc: StorageError) -> bool:
        """The database refuses this message every time: keep its bytes in quarantine and move on
        (not acknowledged to the gateway, which sends it again later, so nothing is lost either way)."""
        try:
            gateway_id: str | None = parse_topic(message.topic, self.settings.topic_root)[0]
        except BatchFormatError:
            gateway_id = None
        try:
            await self.ingest.storage.quarantine(
                [QuarantineRow(gateway_id, "storage_refused", payload=bytes(message.payload))]
            )
        except StorageError:
            return False  # cannot even quarantine: keep retrying, the operator sees the log
        log.error("message on %s refused by the database three times (%s): quarantined, moving on", message.topic, exc)
        return True

    async def _handle(self, conn: MqttConnection, message: paho.MQTTMessage, prepared: Prepared | None) -> None:
        try:
            gateway_id, kind = parse_topic(message.topic, self.settings.topic_root)
        except BatchFormatError as exc:
            log.warning("ignoring message on unexpected topic: %s", exc)
            return
        if kind == "status":
            try:
                status = decode_status(bytes(message.payload))
            except BatchFormatError as exc:
                log.warning("gateway %s: malformed status message: %s", gateway_id, exc)
                return
            await self.ingest.storage.record_presence(gateway_id, status.online, status.timestamp_ms)
            log.info("gateway %s is %s", gateway_id, "online" if status.online else "offline")
            return
        if kind != "readings" or prepared is None:
            return
        ack = await self.ingest.commit(prepared)
        if ack is not None:
            # Committed before this point; if the publish is lost the gateway resends and gets "duplicate".
            while not conn.connected.is_set():
                await conn.connected.wait()
            conn.publish(ack_topic(gateway_id, self.settings.topic_root), encode_ack(ack), qos=1)


class BackendSettings(BaseModel):
    """The backend configuration file (TOML): ``[database]`` and ``[mqtt]``."""

    model_config = ConfigDict(extra="forbid")

    class Database(BaseModel):
        model_config = ConfigDict(extra="forbid")
        url: str = "sqlite:///var/lib/gridtokenx/backend.db"

    database: Database = Database()
    mqtt: BackendMqttSettings = BackendMqttSettings()
