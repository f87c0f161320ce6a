"""Readings leave the outbox over MQTT and are deleted only when the backend acknowledges them.

The broker's PUBACK proves nothing about delivery: a broker with default limits drops QoS-1 messages
queued for a slow subscriber while still acknowledging the publisher. So the gateway waits for the
backend's own ack (``gridtokenx/v1/<gateway>/ack``) naming each (meter, seq) it now holds, deletes
exactly those, and resends what stays unacknowledged after ``ack_timeout_s`` (doubling while nothing
is acknowledged, up to ``ack_timeout_max_s``) or after a reconnect. The backend deduplicates by
(meter, seq), so resending is always safe.

At most ``inflight_batches`` messages of at most ``batch_size`` readings are unacknowledged at any
time, which bounds both memory here and the queue at the broker.

Acks are believed only with the backend's signature (its ack public key, ``[mqtt] backend_key_file``),
and only for what they answer: the ack must name this gateway, a batch this process sent, and the
SHA-256 of exactly the message sent under that batch id; then only (meter, seq) of that batch leave the
outbox. A forged ack deletes nothing, and a replayed genuine one can only confirm what the backend did
with the very message it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
from pydantic import Field, field_validator

from gateway.keys import DeviceKey
from gateway.outbox import COUNTER_BITS, Outbox, OutboxError, OutboxRow
from gridtokenx import __version__
from gridtokenx.batch import (
    TOPIC_ROOT,
    Ack,
    AckAuthError,
    AckStatus,
    BatchFormatError,
    GatewayStatus,
    ack_topic,
    check_gateway_id,
    decode_ack,
    encode_batch_entries,
    encode_status,
    message_digest,
    readings_topic,
    status_topic,
)
from gridtokenx.mqtt import BrokerSettings, MqttConnection, MqttError
from gridtokenx.seed_file import parse_key_text

__all__ = ["BackendKeyError", "MqttSettings", "PublisherStats", "ReadingPublisher", "load_backend_key"]

log = logging.getLogger(__name__)


class BackendKeyError(ValueError):
    """The backend's ack public key file is missing or malformed."""


def load_backend_key(path: Path) -> bytes:
    """The 32-byte public key from a ``.pub`` file: one line of 64 hex digits; ``#`` lines are comments."""
    try:
        text = Path(path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise BackendKeyError(f"cannot read the backend's ack public key {path}: {exc}") from None
    key = parse_key_text(text)
    if key is None:
        raise BackendKeyError(f"{path} does not hold one 64-hex-digit Ed25519 public key")
    return key


class MqttSettings(BrokerSettings):
    """``[mqtt]`` in the gateway configuration: broker, identity, batching and acknowledgement."""

    # Default: [gateway] id of the configuration file.
    gateway_id: str | None = None
    client_id: str | None = None  # default "gridtokenx-gw-<gateway_id>"
    topic_root: str = TOPIC_ROOT
    # Readings per message (~420 bytes each). The backend refuses messages above 1 MiB by default.
    batch_size: int = Field(default=500, ge=1, le=2000)
    inflight_batches: int = Field(default=8, ge=1, le=100)  # unacknowledged messages at once
    ack_timeout_s: float = Field(default=20.0, gt=0)
    ack_timeout_max_s: float = Field(default=300.0, gt=0)
    status_interval_s: float = Field(default=60.0, gt=0)
    # The backend's ack public key (the .pub file of `gridtokenx backend ack-keygen`): only acks it
    # signed delete readings from the outbox. Read when the daemon starts: missing is a config error.
    backend_key_file: Path = Path("/etc/gridtokenx/backend-ack.key.pub")

    @field_validator("gateway_id")
    @classmethod
    def _gateway_id(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return check_gateway_id(value)
        except BatchFormatError as exc:
            raise ValueError(str(exc)) from None

    @property
    def effective_client_id(self) -> str:
        return self.client_id or f"gridtokenx-gw-{self.gateway_id}"


@dataclass
class _InFlight:
    ids: list[int]
    keys: dict[tuple[str, int], int]  # (meter, seq) -> outbox row id
    sent_at: float
    digest: bytes = b""  # of the message sent under this batch id


# Batches remembered after they left the window (requeued after a timeout or a reconnect), so that
# their late ack still frees what it answers.
_RECENT_BATCHES = 256


@dataclass
class PublisherStats:
    messages_sent: int = 0
    readings_sent: int = 0
    readings_resent: int = 0
    readings_acked: int = 0
    readings_rejected: int = 0
    ack_timeouts: int = 0
    # The link to the broker in the words of the gateway's status message: "online" or "offline".
    mqtt: str = "offline"
    acked_not_deleted: int = 0  # acknowledged, waiting for room on the disk to be deleted
    bad_acks: int = 0  # not signed by the backend, or answering nothing this process sent
    connects: int = 0  # successful connections to the broker, the first one included
    last_ack_ms: int | None = None  # wall-clock time of the backend's latest acknowledgement


class ReadingPublisher:
    """Owns the MQTT connection of the gateway. :meth:`run` until cancelled; :meth:`notify` after
    new readings were committed."""

    def __init__(self, settings: MqttSettings, outbox: Outbox, key: DeviceKey, epoch_path: Path | None = None) -> None:
        self.settings = settings
        self.epoch_path = epoch_path
        self.outbox = outbox
        self.key = key
        self.stats = PublisherStats()
        if settings.gateway_id is None:
            raise ValueError("MqttSettings.gateway_id is required to publish")
        self._gw: str = settings.gateway_id
        self._backend_key = load_backend_key(settings.backend_key_file)
        # batch id -> (digest, (meter, seq) -> outbox id) of batches that left the window unanswered
        self._recent: OrderedDict[str, tuple[bytes, dict[tuple[str, int], int]]] = OrderedDict()
        self._bad_ack_logged_at = 0.0
        self._topic = readings_topic(self._gw, settings.topic_root)
        self._inflight: dict[str, _InFlight] = {}
        self._cursor = 0  # highest outbox id sent since start
        self._retry: list[int] = []  # heap of outbox ids to send again
        self._retry_set: set[int] = set()
        self._wake = asyncio.Event()
        self._acks: asyncio.Queue[Ack] = asyncio.Queue()
        self._batch_ids = itertools.count(1)
        # Batch ids are unique per process run, so a late ack from a previous run can never free a
        # window slot of this one.
        self._run_tag = os.urandom(3).hex()
        self._timeouts_in_a_row = 0
        self._conn: MqttConnection | None = None
        self._rejections_logged: set[str] = set()
        self._undeleted: list[tuple[str, int]] = []  # acknowledged keys a full disk kept us from deleting
        self.on_connect_hooks: list[Callable[[], None]] = []
        # Wall-clock time the link last went up or down (down since start until the first connect).
        self.link_since_ms = int(time.time() * 1000)

    @property
    def connected(self) -> bool:
        return self._conn is not None and self._conn.connected.is_set()

    @property
    def broker(self) -> str:
        return f"{self.settings.host}:{self.settings.effective_port}"

    def notify(self) -> None:
        self._wake.set()

    @property
    def connection(self) -> MqttConnection | None:
        """The gateway's one MQTT connection (telemetry publishes through it too), while running."""
        return self._conn

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    # -- lifecycle -------------------------------------------------------------------------------

    def _status(self, online: bool) -> bytes:
        return encode_status(
            GatewayStatus(
                gateway_id=self._gw,
                online=online,
                timestamp_ms=int(time.time() * 1000),
                public_key=self.key.public_key.hex(),
                fingerprint=self.key.fingerprint,
                software=f"gridtokenx {__version__}",
                outbox={
                    "pending": self.outbox.pending,
                    "thinned": self.outbox.thinned_total,
                    "epoch": self.outbox.epoch,
                },
            )
        )

    async def run(self) -> None:
        s = self.settings
        status = status_topic(self._gw, s.topic_root)
        conn = MqttConnection(
            s,
            s.effective_client_id,
            clean_session=True,
            subscriptions=[(ack_topic(self._gw, s.topic_root), 1)],
            # Last Will: the broker marks us offline (retained) if we vanish without a goodbye.
            will=(status, self._status(online=False), 1, True),
            on_connect=self._on_connect,
            on_disconnect=self._on_disconnect,
            on_message=self._on_message,
            # The window bounds what we hand paho; its own queue limit is only a backstop.
            max_inflight=s.inflight_batches + 4,
            max_queued=2 * s.inflight_batches + 16,
        )
        self._conn = conn
        async with conn:
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._send_loop(conn), name="mqtt-send")
                    tg.create_task(self._ack_loop(), name="mqtt-acks")
                    tg.create_task(self._status_loop(conn, status), name="mqtt-status")
            finally:
                if conn.connected.is_set():
                    # Goodbye: retained offline status, so nobody waits for the Last Will's timeout.
                    with contextlib.suppress(MqttError, asyncio.CancelledError):
                        await asyncio.shield(conn.publish_and_wait(status, self._status(False), 1, True, 2.0))

    def _on_connect(self) -> None:
        # Acks for anything in flight may have gone to the old session: send it all again (the backend
        # deduplicates), now rather than after the ack timeout.
        self.stats.mqtt = "online"
        self._requeue_all()
        self.stats.connects += 1
        self.link_since_ms = int(time.time() * 1000)
        assert self._conn is not None
        with contextlib.suppress(MqttError):
            self._conn.publish(status_topic(self._gw, self.settings.topic_root), self._status(True), 1, True)
        for hook in self.on_connect_hooks:
            hook()
        self._wake.set()

    def _on_disconnect(self) -> None:
        self.stats.mqtt = "offline"
        self.link_since_ms = int(time.time() * 1000)

    def _on_message(self, message: paho.MQTTMessage) -> None:
        try:
            ack = decode_ack(bytes(message.payload), self._backend_key)
            if ack.gateway_id != self._gw:
                raise AckAuthError("ack_gateway", "ack answers another gateway")
        except BatchFormatError as exc:
            self._bad_ack(str(exc))
            return
        self._acks.put_nowait(ack)

    def _bad_ack(self, why: str) -> None:
        self.stats.bad_acks += 1
        # At most one line a minute: anyone who can publish on the ack topic could flood the log.
        now = time.monotonic()
        if now - self._bad_ack_logged_at >= 60.0 or self.stats.bad_acks == 1:
            self._bad_ack_logged_at = now
            log.warning("ignoring an ack (%s); %d ignored so far", why, self.stats.bad_acks)

    # -- sending ---------------------------------------------------------------------------------

    def _requeue(self, batch_id: str) -> None:
        flight = self._inflight.pop(batch_id, None)
        if flight is None:
            return
        if flight.digest:
            self._recent[batch_id] = (flight.digest, flight.keys)
            while len(self._recent) > _RECENT_BATCHES:
                self._recent.popitem(last=False)
        for row_id in flight.ids:
            if row_id not in self._retry_set:
                self._retry_set.add(row_id)
                heapq.heappush(self._retry, row_id)
        self._wake.set()

    def _requeue_all(self) -> None:
        for batch_id in list(self._inflight):
            self._requeue(batch_id)

    def _current_timeout(self) -> float:
        s = self.settings
        backoff: float = s.ack_timeout_s * 2.0 ** min(self._timeouts_in_a_row, 16)
        return min(backoff, max(s.ack_timeout_s, s.ack_timeout_max_s))

    def _expire(self) -> float | None:
        """Requeue batches whose ack is overdue; return seconds until the next one falls due."""
        now = time.monotonic()
        timeout = self._current_timeout()
        next_due: float | None = None
        for batch_id, flight in list(self._inflight.items()):
            due = flight.sent_at + timeout
            if due <= now:
                self.stats.ack_timeouts += 1
                self._timeouts_in_a_row += 1
                log.info(
                    "batch %s not acknowledged within %.0f s: will resend %d readings",
                    batch_id,
                    timeout,
                    len(flight.ids),
                )
                self._requeue(batch_id)
            else:
                next_due = due - now if next_due is None else min(next_due, due - now)
        return next_due

    async def _next_rows(self) -> tuple[list[OutboxRow], bool]:
        limit = self.settings.batch_size
        while self._retry:
            ids = [heapq.heappop(self._retry) for _ in range(min(limit, len(self._retry)))]
            self._retry_set.difference_update(ids)
            rows = await self.outbox.fetch_ids(ids)  # acknowledged or thinned ones are gone
            if rows:
                return rows, True
        rows = await self.outbox.fetch_after(self._cursor, limit)
        if rows:
            self._cursor = rows[-1].id
        return rows, False

    async def _wait(self, seconds: float | None) -> None:
        """Sleep until notified (new readings, an ack, a reconnect) or for ``seconds``. (asyncio.timeout,
        not wait_for: on Python 3.11 wait_for can swallow the cancellation that stops the gateway.)"""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    async def _send_loop(self, conn: MqttConnection) -> None:
        while True:
            # Cleared before looking, so a notify() that arrives while we look is never lost.
            self._wake.clear()
            if not conn.connected.is_set():
                await conn.connected.wait()
                continue
            next_due = self._expire()
            if len(self._inflight) >= self.settings.inflight_batches:
                await self._wait(next_due)
                continue
            rows, resend = await self._next_rows()
            if not rows:
                await self._wait(next_due if next_due is not None else 5.0)
                continue
            batch_id = f"{self._run_tag}-{next(self._batch_ids)}"
            payload = encode_batch_entries(self._gw, batch_id, int(time.time() * 1000), (r.entry for r in rows))
            try:
                conn.publish(self._topic, payload, qos=1)
            except MqttError as exc:
                log.debug("publish of batch %s deferred: %s", batch_id, exc)
                self._inflight[batch_id] = _InFlight([r.id for r in rows], {}, 0.0)
                self._requeue(batch_id)
                await self._wait(0.5)
                continue
            self._inflight[batch_id] = _InFlight(
                [r.id for r in rows],
                {(r.meter_id, r.seq): r.id for r in rows},
                time.monotonic(),
                message_digest(payload),
            )
            self.stats.messages_sent += 1
            self.stats.readings_sent += len(rows)
            if resend:
                self.stats.readings_resent += len(rows)

    # -- acknowledgements ------------------------------------------------------------------------

    async def _next_acks(self) -> list[Ack]:
        """Wait for acks; while acknowledged readings wait to be deleted, wake every 2 s to retry."""
        if not self._undeleted:
            return [await self._acks.get()]
        try:
            async with asyncio.timeout(2.0):
                return [await self._acks.get()]
        except TimeoutError:
            return []
    def _answered(self, ack: Ack) -> dict[tuple[str, int], int] | None:
        """The (meter, seq) → outbox id of the batch this ack answers, if it answers one we sent
        (same batch id, same message digest); else None."""
        flight = self._inflight.get(ack.batch_id)
        if flight is not None and flight.digest == ack.digest:
            return flight.keys
        recent = self._recent.get(ack.batch_id)
        if recent is not None and recent[0] == ack.digest:
            return recent[1]
        return None

    async def _ack_loop(self) -> None:
        while True:
            acks = await self._next_acks()
            while not self._acks.empty() and len(acks) < 64:
                acks.append(self._acks.get_nowait())
            keys: list[tuple[str, int]] = []
            conflict = False
            answered: list[Ack] = []
            for ack in acks:
                sent = self._answered(ack)
                if sent is None:
                    self._bad_ack(f"batch {ack.batch_id} with that digest was not sent by this process")
                    continue
                answered.append(ack)
                for r in ack.results:
                    if r.meter_id is None or r.seq is None or (r.meter_id, r.seq) not in sent:
                        continue  # nothing we sent in that batch: nothing to delete
                    keys.append((r.meter_id, r.seq))
                    if r.status is AckStatus.REJECTED:
                        self._log_rejection(r.meter_id, r.seq, r.reason or "unspecified")
                        conflict |= r.reason == "seq_conflict" and r.seq >> COUNTER_BITS == self.outbox.epoch
            if conflict and self.epoch_path is not None:
                await self.outbox.new_epoch(
                    self.epoch_path, "the backend already holds other readings under this epoch's sequence numbers"
                )
            # Commit first, then free the window: a crash in between only means a resend.
            self.stats.readings_acked += len(keys)
            keys = self._undeleted + keys
            try:
                removed = await self.outbox.remove(keys)
            except OutboxError as exc:
                # A full disk: the rows stay until there is room (a restart would resend them, and the
                # backend answers "duplicate"). Never lose the ack, never stop the publisher for it.
                if not self._undeleted:
                    log.error("%d acknowledged readings cannot be deleted yet (%s): retrying every 2 s", len(keys), exc)
                self._undeleted = keys
            else:
                if self._undeleted:
                    log.warning("the %d acknowledged readings that waited for room are deleted", len(self._undeleted))
                self._undeleted = []
                log.debug("ack of %d readings removed %d from the outbox", len(keys), removed)
            self.stats.acked_not_deleted = len(self._undeleted)
            if keys:
                self._timeouts_in_a_row = 0
                self.stats.last_ack_ms = int(time.time() * 1000)
            acked = set(keys)
            for ack in answered:
                self._recent.pop(ack.batch_id, None)
                flight = self._inflight.pop(ack.batch_id, None)
                if flight is None:
                    continue  # late ack of a batch already requeued: its rows are simply gone now
                missing = [row_id for key, row_id in flight.keys.items() if key not in acked]
                if missing:  # the backend skipped some: resend those, not the whole batch
                    self._inflight[ack.batch_id] = _InFlight(missing, {}, 0.0)
                    self._requeue(ack.batch_id)
            self._wake.set()

    def _log_rejection(self, meter_id: str, seq: int, reason: str) -> None:
        self.stats.readings_rejected += 1
        # ERROR once per reason (e.g. the backend does not know this gateway yet), then DEBUG.
        if reason not in self._rejections_logged:
            self._rejections_logged.add(reason)
            log.error(
                "backend rejected meter %s seq %d (%s); it keeps it in quarantine. Further rejections for "
                "this reason are logged at DEBUG. Commissioning: gridtokenx backend add-gateway --id %s "
                "--public-key %s",
                meter_id,
                seq,
                reason,
                self._gw,
                self.key.public_key.hex(),
            )
        else:
            log.debug("backend rejected meter %s seq %d (%s)", meter_id, seq, reason)

    async def _status_loop(self, conn: MqttConnection, topic: str) -> None:
        while True:
            await asyncio.sleep(self.settings.status_interval_s)
            if conn.connected.is_set():
                with contextlib.suppress(MqttError):
                    conn.publish(topic, self._status(True), 1, True)
