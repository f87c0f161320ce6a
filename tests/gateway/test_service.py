"""The whole data path in one event loop: samples → signer → outbox → real Mosquitto → backend ingest
(PostgreSQL) → ack → outbox delete."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from backend.storage import open_storage
from gateway.keys import generate_key
from gateway.mqtt_publisher import MqttSettings
from gateway.outbox import OutboxSettings
from gateway.service import GatewayService
from tests.support import fixtures
from tests.support.ackkey import backend_pub
from tests.support.inprocess import check_exactly_once, retained, running_backend, samples, wait_for
from tests.support.mosquitto import Mosquitto

pytestmark = [pytest.mark.broker, pytest.mark.postgres]
broker, pg_url = fixtures.broker, fixtures.pg_url


def _mqtt(port: int, tmp: Path, **kw: object) -> MqttSettings:
    return MqttSettings(  # type: ignore[arg-type]
        host="127.0.0.1", port=port, gateway_id="gw-1", ack_timeout_s=2.0, backend_key_file=backend_pub(tmp), **kw
    )


async def test_every_reading_arrives_once_and_leaves_the_outbox(tmp_path: Path, broker: Mosquitto, pg_url: str) -> None:
    key = generate_key(tmp_path / "device.key")
    async with await open_storage(pg_url) as storage:
        await storage.add_gateway("gw-1", key.public_key)
    service = GatewayService(
        key=key,
        mqtt=_mqtt(broker.port, tmp_path, batch_size=100),
        outbox=OutboxSettings(path=tmp_path / "o.db"),
        samples=samples(meters=5, rounds=200),
    )
    async with running_backend(pg_url, broker.port) as (storage, ingest, _):
        task = asyncio.create_task(service.run())
        await service.ready.wait()
        await wait_for(lambda: _count(storage), 30, "1000 readings at the backend")
        await wait_for(lambda: _zero(service), 10, "an empty outbox")
        status = retained(broker.port, "gridtokenx/v1/gw-1/status")
        assert status is not None and status["state"] == "online"
        assert status["public_key"] == key.public_key.hex() and status["fingerprint"] == key.fingerprint
        service.stop()
        await task
        check_exactly_once(await storage.readings("gw-1"), key.public_key, {f"m{i}": 200 for i in range(5)})
        assert ingest.stats.stored == 1000 and not ingest.stats.rejected
    stats = service.stats()
    assert stats.pending == 0 and stats.publisher.readings_acked >= 1000
    offline = retained(broker.port, "gridtokenx/v1/gw-1/status")
    assert offline is not None and offline["state"] == "offline"


async def _count_is(storage: object, n: int) -> bool:
    return await storage.reading_count("gw-1") == n  # type: ignore[attr-defined]


def _count(storage: object, n: int = 1000):  # type: ignore[no-untyped-def]
    return _count_is(storage, n)


async def _zero(service: GatewayService) -> bool:
    return service.outbox is not None and service.outbox.pending == 0


async def test_a_gateway_that_lost_all_its_state_moves_to_a_new_epoch_on_conflict(
    tmp_path: Path, broker: Mosquitto, pg_url: str
) -> None:
    """Epoch file and outbox both lost: the first readings reuse numbers the backend holds. The backend
    quarantines them as seq_conflict; the gateway leaves that epoch and the rest are stored normally."""
    key = generate_key(tmp_path / "device.key")
    async with await open_storage(pg_url) as storage:
        await storage.add_gateway("gw-1", key.public_key)
    async with running_backend(pg_url, broker.port) as (storage, _, _):
        for life, rounds in ((1, 20), (2, 40)):
            if life == 2:  # wipe the box's state but keep its key
                for name in ("o.db", "o.db-wal", "o.db-shm", "device.key.epoch"):
                    (tmp_path / name).unlink(missing_ok=True)
            service = GatewayService(
                key=key,
                mqtt=_mqtt(broker.port, tmp_path),
                outbox=OutboxSettings(path=tmp_path / "o.db"),
                samples=samples(meters=1, rounds=rounds, start_ms=1_760_000_000_000 + life * 10**7, period_s=0.02),
            )
            task = asyncio.create_task(service.run())
            await service.ready.wait()
            await wait_for(lambda s=service, n=rounds: _drained(s, n), 30, f"life {life} drained")
            service.stop()
            await task
        assert service.outbox is not None and service.outbox.epoch == 2
        conflicts = (await storage.quarantine_counts()).get("seq_conflict", 0)
        assert 0 < conflicts < 40
        rows = await storage.readings("gw-1")
        assert len(rows) == 20 + 40 - conflicts
        assert sum(1 for r in rows if r.seq >> 40 == 2) == 40 - conflicts


async def _drained(service: GatewayService, n: int) -> bool:
    return (
        service.writer is not None
        and service.writer.stored == n
        and service.outbox is not None
        and (service.outbox.pending == 0)
    )
