"""The demo's embedded broker (amqtt, for machines without Mosquitto) carries the real path: the gateway service
publishes signed batches, the backend's ingest stores and acknowledges each reading once, and the broker
stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from backend.storage import open_storage
from demo.broker import amqtt_available
from gateway.keys import generate_key
from gateway.mqtt_publisher import MqttSettings
from gateway.outbox import OutboxSettings
from gateway.service import GatewayService
from tests.support import fixtures
from tests.support.ackkey import backend_pub
from tests.support.inprocess import check_exactly_once, running_backend, samples, wait_for
from tests.support.mosquitto import free_port

ROOT = Path(__file__).resolve().parents[2]
pg_url = fixtures.pg_url
pytestmark = [
    pytest.mark.postgres,
    # A genuinely absent tool on a developer machine; under CI (bash .ci/setup installs amqtt) it must be there.
    pytest.mark.skipif(not amqtt_available() and not os.environ.get("CI"),
                       reason="amqtt is not installed (bash .ci/setup installs it)"),
]


async def test_gateway_to_backend_through_the_embedded_broker(tmp_path: Path, pg_url: str) -> None:
    port = free_port()
    broker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "demo.broker", "--port", str(port), cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL)
    try:
        assert broker.stdout is not None
        line = (await asyncio.wait_for(broker.stdout.readline(), 30)).decode()
        assert line.startswith(f"broker ready: 127.0.0.1:{port} (amqtt "), line
        key = generate_key(tmp_path / "device.key")
        async with await open_storage(pg_url) as storage:
            await storage.add_gateway("gw-amqtt", key.public_key)
        async with running_backend(pg_url, port) as (storage, _ingest, receiver):
            assert receiver.connection is not None
            await asyncio.wait_for(receiver.connection.connected.wait(), 10)
            mqtt = MqttSettings(host="127.0.0.1", port=port, gateway_id="gw-amqtt", batch_size=25,
                                inflight_batches=4, ack_timeout_s=3.0, backend_key_file=backend_pub(tmp_path))
            service = GatewayService(key=key, mqtt=mqtt, outbox=OutboxSettings(path=tmp_path / "o.db"),
                                     samples=samples(meters=3, rounds=60))
            task = asyncio.create_task(service.run())
            await service.ready.wait()

            async def stored() -> bool:
                return await storage.reading_count("gw-amqtt") == 180

            async def empty() -> bool:
                return service.outbox is not None and service.outbox.pending == 0

            await wait_for(stored, 30, "180 readings at the backend")
            await wait_for(empty, 15, "every reading acknowledged back to the gateway")
            check_exactly_once(await storage.readings("gw-amqtt"), key.public_key, {f"m{i}": 60 for i in range(3)})
            service.stop()
            await task
    finally:
        broker.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(broker.wait(), 15)
    assert code == 0
