"""MQTT delivery against a real Mosquitto: broker-side drops, TLS with client certificates, passwords
and ACLs, and readings the backend refuses."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from pydantic import SecretStr

from backend.storage import open_storage
from gateway.keys import generate_key
from gateway.mqtt_publisher import MqttSettings
from gateway.outbox import OutboxSettings
from gateway.service import GatewayService
from gridtokenx.mqtt import TlsSettings
from tests.support import fixtures
from tests.support.ackkey import backend_pub
from tests.support.inprocess import check_exactly_once, running_backend, samples, wait_for
from tests.support.mosquitto import Mosquitto, make_pki

pytestmark = [pytest.mark.broker, pytest.mark.postgres]
broker, pg_url = fixtures.broker, fixtures.pg_url


async def test_readings_the_broker_dropped_are_resent_until_the_backend_acknowledges(
    tmp_path: Path, pg_url: str
) -> None:
    # A broker that keeps only 2 queued messages per offline subscriber and still PUBACKs the
    # publisher: most batches published while the backend is away are silently dropped.
    with Mosquitto(tmp_path / "broker", extra_conf="max_queued_messages 2\n") as mosq:
        key = generate_key(tmp_path / "device.key")
        async with await open_storage(pg_url) as storage:
            await storage.add_gateway("gw-1", key.public_key)
        async with running_backend(pg_url, mosq.port) as (_, _, receiver):  # creates the persistent session
            assert receiver.connection is not None
            await asyncio.wait_for(receiver.connection.connected.wait(), 10)
            await asyncio.sleep(0.3)
        mqtt = MqttSettings(
            host="127.0.0.1",
            port=mosq.port,
            gateway_id="gw-1",
            backend_key_file=backend_pub(tmp_path),
            batch_size=50,
            inflight_batches=8,
            ack_timeout_s=1.5,
            ack_timeout_max_s=3.0,
        )
        service = GatewayService(
            key=key, mqtt=mqtt, outbox=OutboxSettings(path=tmp_path / "o.db"), samples=samples(meters=4, rounds=250)
        )
        task = asyncio.create_task(service.run())
        await service.ready.wait()
        await wait_for(lambda: _sent(service, 400), 20, "8 batches published into the void")
        async with running_backend(pg_url, mosq.port) as (storage, _ingest, _):
            await wait_for(lambda: _count(storage, 1000), 60, "all 1000 readings at the backend")
            await wait_for(lambda: _empty(service), 10, "an empty outbox")
            check_exactly_once(await storage.readings("gw-1"), key.public_key, {f"m{i}": 250 for i in range(4)})
        service.stop()
        await task
        assert service.stats().publisher.readings_resent > 0  # delivered only because we resent


async def test_tls_client_certificate_password_and_acl(
    tmp_path: Path, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    pki = make_pki(tmp_path / "pki")
    acl = (
        "user backend\ntopic read gridtokenx/v1/+/readings\ntopic read gridtokenx/v1/+/status\n"
        "topic write gridtokenx/v1/+/ack\n\n"
        "pattern write gridtokenx/v1/%u/readings\npattern readwrite gridtokenx/v1/%u/status\n"
        "pattern read gridtokenx/v1/%u/ack\n"
    )
    passwords = {"backend": "b-secret", "gw-tls": "g-secret", "gw-evil": "e-secret"}
    with Mosquitto(tmp_path / "broker", passwords=passwords, acl=acl, tls=pki, require_client_cert=True) as mosq:
        tls = {"tls": TlsSettings(ca_file=pki.ca, cert_file=pki.client_cert, key_file=pki.client_key)}
        key = generate_key(tmp_path / "device.key")
        async with await open_storage(pg_url) as storage:
            await storage.add_gateway("gw-tls", key.public_key)
        pwfile = tmp_path / "gw.pass"
        pwfile.write_text("g-secret\n")
        good = MqttSettings(
            host="localhost",
            port=mosq.port,
            gateway_id="gw-tls",
            username="gw-tls",
            password_file=pwfile,
            backend_key_file=backend_pub(tmp_path),
            **tls,
        )
        async with running_backend(pg_url, mosq.port, username="backend", password="b-secret", **tls) as (
            storage,
            _,
            _,
        ):
            service = GatewayService(
                key=key, mqtt=good, outbox=OutboxSettings(path=tmp_path / "o.db"), samples=samples(meters=2, rounds=50)
            )
            task = asyncio.create_task(service.run())
            await wait_for(lambda: _count(storage, 100, "gw-tls"), 30, "100 readings over TLS")
            service.stop()
            await task

            # Wrong password: refused by the broker, reported once, retried, never a crash.
            caplog.set_level(logging.DEBUG, logger="gridtokenx.mqtt")
            bad = good.model_copy(update={"password_file": None, "password": SecretStr("wrong"), "reconnect_max_s": 1})
            service = GatewayService(
                key=key, mqtt=bad, outbox=OutboxSettings(path=tmp_path / "o2.db"), samples=samples(meters=1, rounds=5)
            )
            task = asyncio.create_task(service.run())
            await asyncio.sleep(3)
            assert not task.done()
            assert "refused the connection" in caplog.text
            service.stop()
            await task
            assert service.stats().pending == 5  # kept safe for when the credentials are fixed

            # ACL: another authenticated gateway cannot publish under gw-tls's topic.
            evil = good.model_copy(
                update={
                    "username": "gw-evil",
                    "password_file": None,
                    "password": SecretStr("e-secret"),
                    "client_id": "evil",
                }
            )
            service = GatewayService(
                key=key,
                mqtt=evil,
                outbox=OutboxSettings(path=tmp_path / "o3.db"),
                samples=samples(meters=1, rounds=5, prefix="x"),
            )
            task = asyncio.create_task(service.run())
            await asyncio.sleep(2)
            service.stop()
            await task
            assert await storage.reading_count("gw-tls") == 100
            assert service.stats().pending == 5


async def test_unknown_gateway_is_quarantined_and_acknowledged_as_rejected(
    tmp_path: Path, broker: Mosquitto, pg_url: str
) -> None:
    key = generate_key(tmp_path / "device.key")  # never commissioned
    mqtt = MqttSettings(
        host="127.0.0.1",
        port=broker.port,
        gateway_id="gw-new",
        ack_timeout_s=2.0,
        backend_key_file=backend_pub(tmp_path),
    )
    service = GatewayService(
        key=key, mqtt=mqtt, outbox=OutboxSettings(path=tmp_path / "o.db"), samples=samples(meters=2, rounds=10)
    )
    async with running_backend(pg_url, broker.port) as (storage, _ingest, _):
        task = asyncio.create_task(service.run())
        await service.ready.wait()
        await wait_for(lambda: _empty_after_stored(service, 20), 20, "rejected readings to leave the outbox")
        assert await storage.reading_count() == 0
        assert (await storage.quarantine_counts()) == {"unknown_gateway": 20}
        assert service.stats().publisher.readings_rejected == 20
        service.stop()
        await task


async def _sent(service: GatewayService, n: int) -> bool:
    return service.publisher is not None and service.publisher.stats.readings_sent >= n


async def _count(storage: object, n: int, gateway: str = "gw-1") -> bool:
    return await storage.reading_count(gateway) == n  # type: ignore[attr-defined]


async def _empty(service: GatewayService) -> bool:
    return service.outbox is not None and service.outbox.pending == 0


async def _empty_after_stored(service: GatewayService, n: int) -> bool:
    return service.writer is not None and service.writer.stored == n and await _empty(service)
