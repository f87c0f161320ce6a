"""One MQTT connection for asyncio code, shared by gateway and backend: paho-mqtt 2.x underneath.

paho runs its network loop in its own thread (``loop_start``), reconnects by itself with exponential
backoff, and is thread-safe for ``publish``/``subscribe``/``ack``. Everything it reports is handed to
the asyncio loop with ``call_soon_threadsafe``, so user callbacks run on the loop, never on paho's
thread. (aiomqtt would give the same over paho's socket callbacks, but it leaves reconnection to the
caller and is not installed here; the threaded loop is paho's best-trodden path.)

Memory: paho queues QoS>0 messages without limit unless told otherwise, and that queue dies with the
process. Callers here keep their own durable state (the outbox), publish only while connected, and
``max_queued`` caps paho's queue as a backstop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

__all__ = [
    "BrokerSettings",
    "MqttConnection",
    "MqttError",
    "MqttNotConnectedError",
    "TlsSettings",
]

log = logging.getLogger(__name__)


class TlsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # CA bundle that signed the broker's certificate; None uses the system's trust store.
    ca_file: Path | None = None
    # Client certificate and key, for brokers that authenticate devices by certificate.
    cert_file: Path | None = None
    key_file: Path | None = None
    # Skip hostname verification (never in production: it lets anyone with a CA-signed cert pose
    # as the broker). The certificate chain is still checked.
    insecure_no_hostname_check: bool = False

    @model_validator(mode="after")
    def _pair(self) -> TlsSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("tls.cert_file and tls.key_file go together")
        return self


class BrokerSettings(BaseModel):
    """How to reach the broker: address, credentials, TLS, keepalive and reconnect backoff."""

    model_config = ConfigDict(extra="forbid")

    host: str = "localhost"
    port: int | None = Field(default=None, ge=1, le=65535)  # default 8883 with TLS, else 1883
    username: str | None = None
    password: SecretStr | None = None
    # Preferred over ``password``: keeps the secret out of the configuration file.
    password_file: Path | None = None
    tls: TlsSettings | None = None
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    reconnect_min_s: int = Field(default=1, ge=1)
    reconnect_max_s: int = Field(default=60, ge=1)

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else (8883 if self.tls is not None else 1883)

    def read_password(self) -> str | None:
        if self.password_file is not None:
            try:
                return self.password_file.read_text().strip()
            except OSError as exc:
                raise MqttError(f"cannot read MQTT password file {self.password_file}: {exc.strerror}") from exc
        return self.password.get_secret_value() if self.password is not None else None


class MqttError(Exception):
    """Base of MQTT errors; messages name the broker."""


class MqttNotConnectedError(MqttError):
    pass


class MqttConnection:
    """An async context manager around one paho client.

    ``on_connect`` runs on the asyncio loop after every (re)connection, once the ``subscriptions``
    are requested; ``on_message`` runs on the loop for every message. ``connected`` is set while the
    session is up.
    """

    def __init__(
        self,
        settings: BrokerSettings,
        client_id: str,
        *,
        clean_session: bool = True,
        subscriptions: Sequence[tuple[str, int]] = (),
        will: tuple[str, bytes, int, bool] | None = None,
        on_connect: Callable[[], None] | None = None,
        on_disconnect: Callable[[], None] | None = None,
        on_message: Callable[[paho.MQTTMessage], None] | None = None,
        manual_ack: bool = False,
        max_inflight: int = 20,
        max_queued: int = 1000,
    ) -> None:
        self.settings = settings
        self.client_id = client_id
        self.connected = asyncio.Event()
        self._subscriptions = list(subscriptions)
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self._on_message = on_message
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failing = False
        self._closing = False
        self._published: dict[int, asyncio.Future[None]] = {}
        self.where = f"{settings.host}:{settings.effective_port}"
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean_session,
            protocol=paho.MQTTv311,
        )
        password = settings.read_password()
        if settings.username is not None or password is not None:
            client.username_pw_set(settings.username, password)
        if settings.tls is not None:
            tls = settings.tls
            try:
                client.tls_set(
                    ca_certs=str(tls.ca_file) if tls.ca_file else None,
                    certfile=str(tls.cert_file) if tls.cert_file else None,
                    keyfile=str(tls.key_file) if tls.key_file else None,
                    tls_version=ssl.PROTOCOL_TLS_CLIENT,
                )
            except (OSError, ssl.SSLError) as exc:
                raise MqttError(f"MQTT TLS files for {self.where} unusable: {exc}") from exc
            client.tls_insecure_set(tls.insecure_no_hostname_check)
        if will is not None:
            client.will_set(will[0], will[1], qos=will[2], retain=will[3])
        client.reconnect_delay_set(settings.reconnect_min_s, max(settings.reconnect_min_s, settings.reconnect_max_s))
        client.max_inflight_messages_set(max_inflight)
        client.max_queued_messages_set(max_queued)
        client.manual_ack_set(manual_ack)
        client.on_connect = self._paho_connect
        client.on_disconnect = self._paho_disconnect
        client.on_connect_fail = self._paho_connect_fail
        client.on_message = self._paho_message
        client.on_publish = self._paho_publish
        self.client = client

    async def __aenter__(self) -> Self:
        self._loop = asyncio.get_running_loop()
        try:
            self.client.connect_async(self.settings.host, self.settings.effective_port, self.settings.keepalive_s)
        except (OSError, ValueError) as exc:
            raise MqttError(f"cannot start MQTT connection to {self.where}: {exc}") from exc
        self.client.loop_start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._closing = True
        self.client.disconnect()
        # loop_stop joins paho's thread; keep the event loop free while it does.
        await asyncio.to_thread(self.client.loop_stop)
        self.connected.clear()

    # -- publishing ------------------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        """Queue a message now; returns its mid. Raises if the session is down (the caller keeps the
        data and retries later: nothing piles up in paho's memory during an outage)."""
        if not self.connected.is_set():
            raise MqttNotConnectedError(f"not connected to {self.where}")
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
            raise MqttError(f"paho's outgoing queue for {self.where} is full")
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            raise MqttError(f"publish to {topic} on {self.where} failed: {paho.error_string(info.rc)}")
        return info.mid

    async def publish_and_wait(
        self, topic: str, payload: bytes, qos: int = 1, retain: bool = False, wait_s: float = 5.0
    ) -> bool:
        """Publish and wait for the broker's PUBACK (not the backend's ack); False on timeout."""
        assert self._loop is not None
        future: asyncio.Future[None] = self._loop.create_future()
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS,):
            return False
        if info.is_published():
            return True
        self._published[info.mid] = future
        if info.is_published():  # PUBACK raced ahead of the registration
            self._published.pop(info.mid, None)
            return True
        try:
            await asyncio.wait_for(future, wait_s)
            return True
        except TimeoutError:
            return False
        finally:
            self._published.pop(info.mid, None)

    def ack(self, mid: int, qos: int) -> None:
        """With ``manual_ack``: PUBACK a received message once it is safely processed."""
        self.client.ack(mid, qos)

    # -- paho's thread → the loop ----------------------------------------------------------------

    def _call(self, fn: Callable[..., Any], *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(fn, *args)
            except RuntimeError:
                pass  # the loop is shutting down

    def _paho_connect(self, client: paho.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any) -> None:
        if rc.is_failure:
            self._call(self._report_failure, f"broker refused the connection: {rc}")
            return
        sock = client.socket()
        if isinstance(sock, socket.socket):  # ssl.SSLSocket is one too
            # Small packets (PUBACKs, acks) must not wait for Nagle's algorithm and the peer's delayed
            # ACK: that costs up to 200 ms per round trip, which caps the ack-paced throughput.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for topic, qos in self._subscriptions:
            client.subscribe(topic, qos)
        self._call(self._connected_on_loop)

    def _connected_on_loop(self) -> None:
        level = logging.WARNING if self._failing else logging.INFO
        log.log(level, "MQTT connected to %s as %s", self.where, self.client_id)
        self._failing = False
        self.connected.set()
        if self._on_connect is not None:
            self._on_connect()

    def _paho_disconnect(self, client: paho.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any) -> None:
        self._call(self._disconnected_on_loop, str(rc))

    def _disconnected_on_loop(self, reason: str) -> None:
        was = self.connected.is_set()
        self.connected.clear()
        if was and not self._closing:
            log.warning("MQTT connection to %s lost (%s): reconnecting with backoff", self.where, reason)
            if self._on_disconnect is not None:
                self._on_disconnect()

    def _paho_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        self._call(self._report_failure, "connection failed")

    def _report_failure(self, what: str) -> None:
        # Logged at ERROR once, then at DEBUG until it recovers: a long outage must not flood the log.
        if not self._failing:
            log.error(
                "MQTT broker %s: %s; retrying every %d-%d s",
                self.where,
                what,
                self.settings.reconnect_min_s,
                self.settings.reconnect_max_s,
            )
            self._failing = True
        else:
            log.debug("MQTT broker %s: %s", self.where, what)

    def _paho_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        if self._on_message is not None:
            self._call(self._on_message, message)

    def _paho_publish(self, client: paho.Client, userdata: Any, mid: int, rc: ReasonCode, props: Any) -> None:
        self._call(self._published_on_loop, mid)

    def _published_on_loop(self, mid: int) -> None:
        future = self._published.get(mid)
        if future is not None and not future.done():
            future.set_result(None)
