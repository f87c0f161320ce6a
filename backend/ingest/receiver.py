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
import hashlib
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import paho.mqtt.client as paho
from pydantic import BaseModel, ConfigDict, Field

from backend.ingest.ack_key import AckKey, load_ack_key
from backend.ingest.pipeline import QUARANTINE_PAYLOAD_MAX, Ingest, Prepared
from backend.storage import QuarantineRow, StorageError
from gridtokenx.batch import (
    MAX_MESSAGE_BYTES,
    MAX_READINGS,
    TOPIC_ROOT,
    Ack,
    BatchFormatError,
    ack_topic,
    decode_status,
    encode_ack,
    parse_topic,
)
from gridtokenx.mqtt import BrokerSettings, MqttConnection, MqttError

__all__ = ["BackendMqttSettings", "IngestSettings", "Receiver"]

log = logging.getLogger(__name__)
_T = TypeVar("_T")


class BackendMqttSettings(BrokerSettings):
    client_id: str = "gridtokenx-backend"
    topic_root: str = TOPIC_ROOT
    # With several backend processes, a shared subscription group splits gateways' messages among them.
    shared_group: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]+$")
    # Messages the broker may have in flight to us before we PUBACK (bounds our memory).
    max_inflight: int = Field(default=20, ge=1, le=1000)
    # The key that signs every ack (backend/ingest/ack_key.py); the same file for every ingest process.
    ack_key_file: Path = Path("/var/lib/gridtokenx/backend-ack.key")
    # Refused before parsing; keep the broker's message_size_limit at or below it (docs/mqtt.md).
    max_message_bytes: int = Field(default=MAX_MESSAGE_BYTES, ge=1024, le=256 * 1024 * 1024)
    max_readings: int = Field(default=MAX_READINGS, ge=1, le=100_000)
    # A message that was being processed this many times without being finished (the process died
    # or was stopped each time, so the broker delivered it again) is quarantined as "poison" on its
    # next delivery instead of being processed once more.
    poison_after: int = Field(default=3, ge=1, le=100)


class IngestSettings(BaseModel):
    """``[ingest]``: how ingest uses the machine."""

    model_config = ConfigDict(extra="forbid")
    # Processes that check signatures for this ingest process (0: a thread of its own; unset: one per
    # core, none on a single core). The check holds the GIL, so this is how one ingest process uses
    # more than one core: on 2 cores, 1 ingest process with 2 verification processes drained about
    # 18-21k readings/s where 2 ingest processes on a shared subscription did 13-16k (docs/mqtt.md).
    verify_processes: int | None = Field(default=None, ge=0, le=64)

    def effective_verify_processes(self) -> int:
        if self.verify_processes is not None:
            return self.verify_processes
        cores = os.cpu_count() or 1
        return min(cores, 8) if cores > 1 else 0


@dataclass(frozen=True)
class _Work:
    """What to do with one message, decided by the verify stage; the store stage carries it out."""

    kind: str  # "readings" | "status" | "quarantine" | "nothing"
    gateway_id: str | None = None
    prepared: Prepared | None = None
    online: bool = False
    status_ms: int = 0
    row: QuarantineRow | None = None
    redelivery: bytes | None = None  # ledger key of a redelivered message, forgotten once it is done


# A message and the task judging it.
_Judging = tuple[paho.MQTTMessage, "asyncio.Future[_Work]"]


def _topic_of(message: paho.MQTTMessage) -> tuple[str | None, bytes]:
    raw = message._topic if isinstance(getattr(message, "_topic", None), bytes) else b""
    try:
        return message.topic, raw
    except UnicodeDecodeError:  # brokers refuse such topics; never trust that
        return None, raw


class Receiver:
    def __init__(self, settings: BackendMqttSettings, ingest: Ingest, ack_key: AckKey | None = None) -> None:
        self.settings = settings
        self.ingest = ingest
        self.ack_key = ack_key if ack_key is not None else load_ack_key(settings.ack_key_file)
        ingest.max_message_bytes = settings.max_message_bytes
        ingest.max_readings = settings.max_readings
        self._queue: asyncio.Queue[paho.MQTTMessage] = asyncio.Queue()
        self.processed = 0
        self._in_progress = 0  # messages handed to the judge stage and not yet stored
        self._idle = asyncio.Event()
        self._idle.set()
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
        """Two stages in order: judge the next messages (CPU, worker threads) while the oldest one is
        stored and acknowledged (database and network). Up to three messages are judged at once, so
        the worker threads always have a batch to work on while the loop parses the next message or
        stores the previous one; they are stored and acknowledged strictly in arrival order. The
        hand-over queue is small, so at most a few judged messages wait in memory; the broker's
        in-flight limit bounds the rest."""
        conn = self.connection
        judged: asyncio.Queue[_Judging] = asyncio.Queue(maxsize=2)
        try:
            async with conn, asyncio.TaskGroup() as tg:
                tg.create_task(self._judge_stage(judged), name="backend-verify")
                tg.create_task(self._store_stage(conn, judged), name="backend-store")
        finally:
            while not judged.empty():
                judged.get_nowait()[1].cancel()

    async def _judge_stage(self, out: asyncio.Queue[_Judging]) -> None:
        while True:
            message = await self._queue.get()
            # A redelivered message (the process died or stopped while it was in flight) is processed
            # alone: nothing else is in progress while it is, so if it kills the process again, the
            # redelivery ledger counts that against it and not against the messages queued behind it.
            alone = bool(message.dup)
            if alone:
                await self._idle.wait()
            task = asyncio.ensure_future(self._judge(message))
            self._in_progress += 1
            self._idle.clear()
            try:
                await out.put((message, task))
            except BaseException:
                task.cancel()
                raise
            if alone:
                await self._idle.wait()

    async def _retrying(self, what: str, attempt: Callable[[], Awaitable[_T]]) -> _T:
        """Run ``attempt()`` until it does not raise StorageError (the database is down: wait for it)."""
        delay = 0.5
        while True:
            try:
                return await attempt()
            except StorageError as exc:
                self.ingest.log(logging.ERROR, "storage", "%s failed (%s): retrying in %.1f s", what, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _judge(self, message: paho.MQTTMessage) -> _Work:
        """Decide what becomes of one message. Never raises (but for cancellation): whatever the
        message holds, the answer is a _Work."""
        topic, raw_topic = _topic_of(message)
        payload = bytes(message.payload)
        redelivery: bytes | None = None
        try:
            if message.dup:
                # The broker sent it before and we never PUBACKed it: we died or stalled on it. Count
                # that durably before touching it again, so a message that kills the process cannot
                # do so for ever.
                redelivery = hashlib.sha256(raw_topic + b"\0" + payload).digest()
                ledger_key = redelivery
                attempts = await self._retrying(
                    "counting a redelivery", lambda: self.ingest.storage.note_redelivery(ledger_key)
                )
                if attempts >= self.settings.poison_after:
                    return self._quarantine(topic, raw_topic, payload, "poison", redelivery)
            if len(payload) > self.settings.max_message_bytes:
                return self._quarantine(topic, raw_topic, payload, "malformed:size", redelivery)
            try:
                gateway_id, kind = parse_topic(topic, self.settings.topic_root)  # type: ignore[arg-type]
            except BatchFormatError:
                return self._quarantine(None, raw_topic, payload, "topic", redelivery)
            if kind == "status":
                return self._status(gateway_id, payload, redelivery)
            if kind != "readings":
                return self._quarantine(None, raw_topic, payload, "topic", redelivery)
            prepared = await self._retrying(
                f"verifying a message from {gateway_id}", lambda: self.ingest.prepare(gateway_id, payload)
            )
            return _Work("readings", gateway_id, prepared, redelivery=redelivery)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug: this message only
            self.ingest.log(logging.ERROR, "internal_error", "judging a message failed: quarantined", exc_info=True)
            return self._quarantine(None, raw_topic, payload, "internal_error", redelivery)

    def _quarantine(
        self, gateway_id: str | None, raw_topic: bytes, payload: bytes, reason: str, redelivery: bytes | None
    ) -> _Work:
        self.ingest.stats.quarantined_messages[reason] += 1
        if reason != "internal_error":
            self.ingest.log(logging.WARNING, reason, "message on %r quarantined (%s)", raw_topic[:200], reason)
        try:
            gateway = parse_topic(raw_topic.decode("utf-8"), self.settings.topic_root)[0]
        except (BatchFormatError, UnicodeDecodeError):
            gateway = None
        row = QuarantineRow(
            gateway if gateway is not None else gateway_id,
            reason,
            payload=payload[:QUARANTINE_PAYLOAD_MAX],
            topic=None if gateway is not None else raw_topic[:1024],
        )
        return _Work("quarantine", row=row, redelivery=redelivery)

    def _status(self, gateway_id: str, payload: bytes, redelivery: bytes | None) -> _Work:
        if not payload:  # an operator cleared the retained status: nothing to record
            return _Work("nothing", gateway_id, redelivery=redelivery)
        try:
            status = decode_status(payload)
            if status.gateway_id != gateway_id:
                raise BatchFormatError("gateway_mismatch", "status names another gateway than its topic")
        except BatchFormatError as exc:
            raw = f"{self.settings.topic_root}/{gateway_id}/status".encode()
            return self._quarantine(gateway_id, raw, payload, f"malformed_status:{exc.code}", redelivery)
        return _Work("status", gateway_id, online=status.online, status_ms=status.timestamp_ms, redelivery=redelivery)

    async def _store_stage(self, conn: MqttConnection, judged: asyncio.Queue[_Judging]) -> None:
        while True:
            message, task = await judged.get()
            try:
                work = await task
            except BaseException:
                task.cancel()
                raise
            try:
                await self._process(conn, message, work)
            finally:
                self._in_progress -= 1
                if self._in_progress == 0:
                    self._idle.set()

    async def _process(self, conn: MqttConnection, message: paho.MQTTMessage, work: _Work) -> None:
        ack = await self._commit(work, bytes(message.payload), _topic_of(message)[1])
        if ack is not None:
            await self._publish_ack(conn, ack)
        if work.redelivery is not None:
            ledger_key = work.redelivery
            await self._retrying("closing a redelivery", lambda: self.ingest.storage.forget_redelivery(ledger_key))
        if message.qos > 0:
            conn.ack(message.mid, message.qos)
        self.processed += 1

    async def _commit(self, work: _Work, payload: bytes, raw_topic: bytes) -> Ack | None:
        """Carry out a _Work. A database that is down is waited for; one that answers ``SELECT 1`` right
        after failing this message, three times, has this message quarantined as ``storage_refused``
        instead (and if even that is refused, a bare row saying so): no message blocks the ones
        behind it for long, and an outage never quarantines anything."""
        delay = 0.5
        blamed = 0
        while True:
            try:
                return await self._carry_out(work)
            except StorageError as exc:
                if await self._database_answers():
                    blamed += 1
                    if blamed >= 3:
                        if work.kind == "quarantine" and work.row is not None and work.row.reason == "storage_refused":
                            work = _Work("quarantine", row=QuarantineRow(None, "storage_refused"))
                        else:
                            work = replace(
                                self._quarantine(work.gateway_id, raw_topic, payload, "storage_refused", None),
                                redelivery=work.redelivery,
                            )
                        blamed = 0
                        continue
                self.ingest.log(
                    logging.ERROR, "storage", "storing a message failed (%s): retrying in %.1f s", exc, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug: this message only
                self.ingest.log(logging.ERROR, "internal_error", "storing a message failed: quarantined", exc_info=True)
                work = replace(
                    self._quarantine(work.gateway_id, raw_topic, payload, "internal_error", None),
                    redelivery=work.redelivery,
                )

    async def _carry_out(self, work: _Work) -> Ack | None:
        if work.kind == "readings":
            assert work.prepared is not None
            return await self.ingest.commit(work.prepared)
        if work.kind == "status":
            assert work.gateway_id is not None
            await self.ingest.storage.record_presence(work.gateway_id, work.online, work.status_ms)
            self.ingest.log(
                logging.INFO, "presence", "gateway %s is %s", work.gateway_id, "online" if work.online else "offline"
            )
        elif work.kind == "quarantine":
            assert work.row is not None
            await self.ingest.storage.quarantine([work.row])
        return None

    async def _database_answers(self) -> bool:
        try:
            await self.ingest.storage.ping()
        except StorageError:
            return False
        return True

    async def _publish_ack(self, conn: MqttConnection, ack: Ack) -> None:
        """Signed, on the gateway's ack topic. Committed before this point: if the publish is lost, the
        gateway resends and gets "duplicate"."""
        payload = encode_ack(ack, self.ack_key.sign)
        topic = ack_topic(ack.gateway_id, self.settings.topic_root)
        delay = 0.2
        while True:
            while not conn.connected.is_set():
                await conn.connected.wait()
            try:
                conn.publish(topic, payload, qos=1)
                return
            except MqttError as exc:
                self.ingest.log(logging.ERROR, "mqtt", "publishing an ack failed (%s): retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)


class BackendSettings(BaseModel):
    """The backend configuration file (TOML): ``[database]`` and ``[mqtt]``."""

    model_config = ConfigDict(extra="forbid")

    class Database(BaseModel):
        model_config = ConfigDict(extra="forbid")
        url: str = "sqlite:///var/lib/gridtokenx/backend.db"

    database: Database = Database()
    mqtt: BackendMqttSettings = BackendMqttSettings()
    ingest: IngestSettings = IngestSettings()
