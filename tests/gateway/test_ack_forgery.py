"""A publisher on a gateway's ack topic without the backend's ack key cannot make it delete anything.

The gateway sends real batches through a real Mosquitto; no backend runs, so nothing is acknowledged
unless the test publishes it. Forged acks of every kind — unsigned (version 1), signed by another key,
signed by the right key but answering another message (a replay), another gateway, or readings of
another batch — leave the outbox as it was; a genuine ack then deletes exactly the batch it answers,
which shows the forged ones were refused for their forgery and not for some other reason."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from nacl.signing import SigningKey
from paho.mqtt.enums import CallbackAPIVersion

from gateway.keys import generate_key
from gateway.mqtt_publisher import MqttSettings
from gateway.outbox import OutboxSettings
from gateway.service import GatewayService
from gridtokenx.batch import Ack, AckResult, AckStatus, encode_ack, message_digest
from tests.support import fixtures
from tests.support.ackkey import backend_pub, test_ack_key
from tests.support.inprocess import samples, wait_for
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.broker
broker = fixtures.broker

GW = "gw-1"


class _Sniffer:
    """Sees the gateway's readings messages, and publishes on its ack topic as anyone could."""

    def __init__(self, port: int) -> None:
        self.messages: list[bytes] = []
        self._lock = threading.Lock()
        self.client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        subscribed = threading.Event()
        self.client.on_connect = lambda c, *_: c.subscribe(f"gridtokenx/v1/{GW}/readings", 1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = lambda c, u, m: self._got(m.payload)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(10)

    def _got(self, payload: bytes) -> None:
        with self._lock:
            self.messages.append(payload)

    def publish_ack(self, payload: bytes) -> None:
        self.client.publish(f"gridtokenx/v1/{GW}/ack", payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _batch(payload: bytes) -> tuple[str, bytes, list[tuple[str, int]]]:
    obj = json.loads(payload)
    return obj["batch"], message_digest(payload), [(r["meter_id"], r["seq"]) for r in obj["readings"]]


def _ack(batch: str, digest: bytes, keys: list[tuple[str, int]], gateway: str = GW) -> Ack:
    return Ack(gateway, batch, digest, tuple(AckResult(m, s, AckStatus.STORED) for m, s in keys))


async def test_forged_acks_delete_nothing_and_a_genuine_one_deletes_exactly_its_batch(
    tmp_path: Path, broker: Mosquitto
) -> None:
    key = generate_key(tmp_path / "device.key")
    mqtt = MqttSettings(
        host="127.0.0.1",
        port=broker.port,
        gateway_id=GW,
        batch_size=10,
        inflight_batches=4,
        ack_timeout_s=60.0,  # no resend while the test runs: every batch is sent exactly once
        backend_key_file=backend_pub(tmp_path),
    )
    sniffer = _Sniffer(broker.port)
    service = GatewayService(
        key=key, mqtt=mqtt, outbox=OutboxSettings(path=tmp_path / "o.db"), samples=samples(meters=2, rounds=30)
    )
    task = asyncio.create_task(service.run())
    try:
        await service.ready.wait()

        async def four_batches() -> bool:
            return len(sniffer.messages) >= 4 and service.stats().pending == 60

        await wait_for(four_batches, 20, "four batches sent and 60 readings in the outbox")
        (b1, d1, k1), (b2, d2, k2) = _batch(sniffer.messages[0]), _batch(sniffer.messages[1])
        genuine = test_ack_key()
        impostor = SigningKey(b"\x66" * 32)

        forged = [
            # Version 1: no signature at all.
            json.dumps({"v": 1, "batch": b1, "results": [[m, s, "stored"] for m, s in k1]}).encode(),
            # Version 2, signed by someone else.
            encode_ack(_ack(b1, d1, k1), lambda m: impostor.sign(m).signature),
            # The right key, but the signature over another body (spliced).
            encode_ack(_ack(b1, d1, k1), genuine.sign)[:-138]
            + encode_ack(_ack(b2, d2, k2), genuine.sign)[-138:],
            # The right key answering another message under that batch id (a replay from another run).
            encode_ack(_ack(b1, message_digest(b"another message"), k1), genuine.sign),
            # The right key, for another gateway.
            encode_ack(_ack(b1, d1, k1, gateway="gw-2"), genuine.sign),
            # Not even JSON, and deep nesting.
            b"\xff\xfe not an ack",
            b"[" * 100_000,
        ]
        for payload in forged:
            sniffer.publish_ack(payload)
        # A genuine ack of batch 1 that also names batch 2's readings: only batch 1's may go.
        sniffer.publish_ack(encode_ack(_ack(b1, d1, [*k2, *k1]), genuine.sign))

        async def batch_one_gone() -> bool:
            return service.stats().pending == 60 - len(k1)

        await wait_for(batch_one_gone, 10, "the genuine ack to delete its batch")
        await asyncio.sleep(0.5)  # anything wrongly accepted would have been applied by now
        assert service.stats().pending == 60 - len(k1)
        assert service.stats().publisher.bad_acks == len(forged)
        assert service.outbox is not None
        left = {(r.meter_id, r.seq) for r in await service.outbox.fetch_after(0, 1000)}
        assert not left & set(k1) and set(k2) <= left
    finally:
        service.stop()
        await task
        sniffer.close()
