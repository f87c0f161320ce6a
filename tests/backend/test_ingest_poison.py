"""A message that kills ingest every time it is processed is quarantined as ``poison``, not retried for
ever: the broker redelivers it (MQTT DUP) after each death, ingest counts that in the database before
touching it again, and after ``poison_after`` deaths keeps its bytes in quarantine and moves on.

Ingest no longer has a known input that kills it (tests/backend/test_ingest_fuzz.py), so the death is
injected: an exception that nothing in the receiver may catch, raised while judging one particular
message — standing for whatever might still kill the process (the OOM killer, a crash in a C library).
Everything else is real: Mosquitto's persistent session and redelivery, PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import json

import paho.mqtt.client as paho
import pytest
from nacl.signing import SigningKey
from paho.mqtt.enums import CallbackAPIVersion

from backend.ingest.pipeline import Ingest, Prepared
from backend.ingest.receiver import BackendMqttSettings, Receiver
from backend.storage import open_storage
from gridtokenx.batch import encode_batch
from gridtokenx.reading import Reading, sign
from tests.support import fixtures
from tests.support.ackkey import test_ack_key
from tests.support.mosquitto import Mosquitto

pytestmark = [pytest.mark.broker, pytest.mark.postgres]
broker, pg_url = fixtures.broker, fixtures.pg_url

GW = "gw-p"
KEY = SigningKey(b"\x09" * 32)


class _Death(BaseException):
    """Not an Exception: it ends the receiver as a killed process would end."""


def _payload(seq: int, batch: str) -> bytes:
    r = Reading(meter_id="m1", seq=seq, timestamp_ms=1, import_wh=seq, export_wh=0)
    return encode_batch(GW, batch, 1, [(r, sign(r, KEY))])


def _publish(port: int, payloads: list[bytes]) -> None:
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for p in payloads:
            client.publish(f"gridtokenx/v1/{GW}/readings", p, qos=1).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


async def test_a_message_that_kills_ingest_every_time_is_quarantined_as_poison(broker: Mosquitto, pg_url: str) -> None:
    poison, good = _payload(1, "poison"), _payload(2, "good")
    settings = BackendMqttSettings(host="127.0.0.1", port=broker.port, client_id="poison-test", poison_after=3)
    deaths = 0

    async def life(storage_url: str) -> bool:
        """Run ingest until it dies (True) or has stored the good reading and quarantined the poison."""
        nonlocal deaths
        async with await open_storage(storage_url) as storage:
            ingest = Ingest(storage)
            real_prepare = ingest.prepare

            async def prepare(gateway_id: str, payload: bytes) -> Prepared:
                if payload == poison:
                    raise _Death
                return await real_prepare(gateway_id, payload)

            ingest.prepare = prepare  # type: ignore[method-assign]
            receiver = Receiver(settings, ingest, ack_key=test_ack_key())
            task = asyncio.create_task(receiver.run())
            try:
                for _ in range(150):
                    if task.done():
                        break
                    if await storage.reading_count(GW) == 1 and "poison" in await storage.quarantine_counts():
                        return False
                    await asyncio.sleep(0.1)
                else:
                    raise AssertionError("ingest neither died nor finished within 15 s")
                with pytest.raises(BaseExceptionGroup) as died:
                    await task
                assert died.group_contains(_Death)
                deaths += 1
                return True
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, BaseExceptionGroup):
                    await task
                ingest.close()

    async with await open_storage(pg_url) as storage:
        await storage.add_gateway(GW, bytes(KEY.verify_key))
        # The persistent session exists before anything is published, as in production.
        ingest = Ingest(storage)
        receiver = Receiver(settings, ingest, ack_key=test_ack_key())
        task = asyncio.create_task(receiver.run())
        await asyncio.wait_for(receiver.connection.connected.wait(), 10)
        await asyncio.sleep(0.3)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        ingest.close()
    await asyncio.to_thread(_publish, broker.port, [poison, good])
    lives = 0
    while await life(pg_url):
        lives += 1
        assert lives <= 5, "the poison message was retried for ever"
    assert deaths == 3  # killed by it three times; on the fourth delivery it was set aside
    async with await open_storage(pg_url) as storage:
        assert await storage.reading_count(GW) == 1
        rows = await storage.fetch("SELECT gateway_id, reason, payload FROM quarantine")
        assert [(g, r, json.loads(bytes(p))["batch"]) for g, r, p in rows] == [(GW, "poison", "poison")]
        # The ledger forgets what was finished: nothing is left counting.
        assert await storage.fetch("SELECT count(*) FROM ingest_redeliveries") == [(0,)]


async def test_a_message_the_database_keeps_refusing_is_quarantined_and_the_next_one_flows(
    broker: Mosquitto, pg_url: str
) -> None:
    """A refusal the backend could not foresee (here a DBA's trigger): the database answers, but not for
    this message. After three tries it is quarantined as storage_refused, bytes kept; the one behind
    it is stored."""
    async with await open_storage(pg_url) as storage:
        await storage.add_gateway(GW, bytes(KEY.verify_key))
        await storage.execute(
            "CREATE FUNCTION refuse_seq_13() RETURNS trigger AS $$ BEGIN IF NEW.seq = 13 THEN "
            "RAISE EXCEPTION 'refused by policy'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
        )
        await storage.execute(
            "CREATE TRIGGER refuse_seq_13 BEFORE INSERT ON readings FOR EACH ROW EXECUTE FUNCTION refuse_seq_13()"
        )
        ingest = Ingest(storage)
        receiver = Receiver(
            BackendMqttSettings(host="127.0.0.1", port=broker.port, client_id="refused-test"),
            ingest,
            ack_key=test_ack_key(),
        )
        task = asyncio.create_task(receiver.run())
        try:
            await asyncio.wait_for(receiver.connection.connected.wait(), 10)
            await asyncio.sleep(0.3)
            refused, good = _payload(13, "refused"), _payload(14, "good")
            started = asyncio.get_running_loop().time()
            await asyncio.to_thread(_publish, broker.port, [refused, good])
            for _ in range(200):
                if await storage.reading_count(GW) == 1:
                    break
                await asyncio.sleep(0.05)
            waited = asyncio.get_running_loop().time() - started
            assert await storage.reading_count(GW) == 1 and waited < 8
            rows = await storage.fetch("SELECT reason, payload FROM quarantine")
            assert [(r, bytes(p)) for r, p in rows] == [("storage_refused", refused)]
            assert not task.done()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            ingest.close()
