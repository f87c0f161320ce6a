"""Backend ingest on both storage dialects (PostgreSQL and SQLite): the same code path, real databases."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from backend.ingest.pipeline import Ingest
from backend.storage import Storage, StorageError, open_storage
from gridtokenx.batch import AckStatus, encode_batch
from gridtokenx.reading import Reading, encode, sign
from tests.support.postgres import temp_database

GW = "gw-a"


@pytest.fixture(params=["postgres", "sqlite"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
        with temp_database() as url:
            async with await open_storage(url) as s:
                yield s
    else:
        async with await open_storage(f"sqlite:///{tmp_path}/backend.db") as s:
            yield s


@pytest.fixture
def key() -> SigningKey:
    return SigningKey(b"\x01" * 32)


def _reading(seq: int, meter: str = "m1", imp: int = 1000) -> Reading:
    return Reading(
        meter_id=meter, seq=seq, timestamp_ms=1_760_000_000_000 + seq, import_wh=imp, export_wh=5, power_w=-20
    )


def _payload(key: SigningKey, readings: list[Reading], gateway: str = GW, batch: str = "b1") -> bytes:
    return encode_batch(gateway, batch, 1, [(r, sign(r, key)) for r in readings])


async def test_stores_then_reports_duplicates_idempotently(storage: Storage, key: SigningKey) -> None:
    await storage.add_gateway(GW, bytes(key.verify_key))
    ingest = Ingest(storage)
    readings = [_reading(s) for s in range(100)]
    ack = await ingest.handle(GW, _payload(key, readings))
    assert ack is not None and ack.batch_id == "b1"
    assert [(r.meter_id, r.seq, r.status) for r in ack.results] == [("m1", s, AckStatus.STORED) for s in range(100)]
    again = await ingest.handle(GW, _payload(key, [*readings[50:], _reading(100)], batch="b2"))
    assert again is not None
    assert [r.status for r in again.results] == [AckStatus.DUPLICATE] * 50 + [AckStatus.STORED]
    assert await storage.reading_count(GW) == 101
    stored = await storage.readings(GW)
    assert stored[7].data == encode(readings[7]) and stored[7].power_w == -20 and stored[7].flags == readings[7].flags
    ingest.close()


async def test_refused_readings_are_quarantined_and_acknowledged_as_rejected(storage: Storage, key: SigningKey) -> None:
    await storage.add_gateway(GW, bytes(key.verify_key))
    other = SigningKey(b"\x02" * 32)
    ingest = Ingest(storage)
    good = _reading(1)
    forged = _reading(2)
    payload = json.loads(_payload(key, [good, forged]))
    payload["readings"][1]["sig"] = sign(forged, other).signature.hex()  # signed by someone else
    ack = await ingest.handle(GW, json.dumps(payload).encode())
    assert ack is not None
    assert [(r.seq, r.status, r.reason) for r in ack.results] == [  # in batch order
        (1, AckStatus.STORED, None),
        (2, AckStatus.REJECTED, "bad_signature"),
    ]
    # Plain fields that disagree with the signed bytes.
    lying = json.loads(_payload(key, [_reading(3)]))
    lying["readings"][0]["import_wh"] = 999_999
    ack = await ingest.handle(GW, json.dumps(lying).encode())
    assert ack is not None and ack.results[0].reason == "claims_mismatch"
    # Different bytes under a (meter, seq) already stored: never overwrite, quarantine.
    ack = await ingest.handle(GW, _payload(key, [_reading(1, imp=5)]))
    assert ack is not None and (ack.results[0].status, ack.results[0].reason) == (AckStatus.REJECTED, "seq_conflict")
    # Unknown and disabled gateways.
    ack = await ingest.handle("gw-unknown", _payload(key, [_reading(9)], gateway="gw-unknown"))
    assert ack is not None and ack.results[0].reason == "unknown_gateway"
    # A message naming another gateway than the topic it came on.
    ack = await ingest.handle(GW, _payload(key, [_reading(10)], gateway="gw-other"))
    assert ack is not None and ack.results[0].reason == "gateway_mismatch"
    # Not a readings message at all: nothing to ack, but the bytes are kept.
    assert await ingest.handle(GW, b"\x00garbage") is None
    counts = await storage.quarantine_counts()
    assert counts == {
        "bad_signature": 1,
        "claims_mismatch": 1,
        "seq_conflict": 1,
        "unknown_gateway": 1,
        "gateway_mismatch": 1,
        "malformed:json": 1,
    }
    assert await storage.reading_count(GW) == 1
    assert ingest.stats.rejected["bad_signature"] == 1 and ingest.stats.malformed_messages == 1
    ingest.close()


async def test_disabled_gateway_and_rekeying(storage: Storage, key: SigningKey) -> None:
    await storage.add_gateway(GW, bytes(key.verify_key))
    with pytest.raises(StorageError, match="already commissioned"):
        await storage.add_gateway(GW, bytes(SigningKey(b"\x03" * 32).verify_key))
    await storage.set_gateway_status(GW, "disabled")
    ingest = Ingest(storage)
    ack = await ingest.handle(GW, _payload(key, [_reading(1)]))
    assert ack is not None and ack.results[0].reason == "gateway_disabled"
    ingest.close()


@pytest.mark.parametrize("workers", [{"verify_threads": 2}, {"verify_processes": 2}], ids=["threads", "processes"])
async def test_many_readings_are_verified_in_workers_with_the_same_result(
    storage: Storage, key: SigningKey, workers: dict[str, int]
) -> None:
    await storage.add_gateway(GW, bytes(key.verify_key))
    ingest = Ingest(storage, **workers)
    readings = [_reading(s, meter=f"m{s % 7}") for s in range(700)]
    payload = json.loads(_payload(key, readings))
    payload["readings"][333]["sig"] = "00" * 64
    payload["readings"][334]["data"] = payload["readings"][334]["data"][:-2]  # not 60 bytes: no pair to check
    payload["readings"][335]["sig"] = payload["readings"][336]["sig"]  # another reading's signature
    ack = await ingest.handle(GW, json.dumps(payload).encode())
    assert ack is not None and len(ack.results) == 700
    bad = [(r.meter_id, r.seq, r.reason) for r in ack.results if r.status is AckStatus.REJECTED]
    assert bad == [
        (readings[333].meter_id, 333, "bad_signature"),
        (readings[334].meter_id, 334, "format:length"),
        (readings[335].meter_id, 335, "bad_signature"),
    ]
    assert await storage.reading_count(GW) == 697
    ingest.close()


async def test_readings_sent_before_commissioning_are_recovered_from_quarantine(
    storage: Storage, key: SigningKey
) -> None:
    ingest = Ingest(storage)
    early = [_reading(s) for s in range(30)]
    ack = await ingest.handle(GW, _payload(key, early))
    assert ack is not None and {r.reason for r in ack.results} == {"unknown_gateway"}
    forged = json.loads(_payload(key, [_reading(99)]))
    forged["readings"][0]["sig"] = "11" * 64
    await ingest.handle(GW, json.dumps(forged).encode())
    await storage.add_gateway(GW, bytes(key.verify_key))
    assert await ingest.reprocess_quarantine(GW) == (30, 1)
    assert await storage.reading_count(GW) == 30
    assert await storage.quarantine_counts() == {"bad_signature": 1}
    assert await ingest.reprocess_quarantine(GW) == (0, 0)  # nothing left to release
    ingest.close()


async def test_a_verification_process_that_dies_costs_no_verdict(storage: Storage, key: SigningKey) -> None:
    await storage.add_gateway(GW, bytes(key.verify_key))
    ingest = Ingest(storage, verify_processes=1)
    try:
        ack = await ingest.handle(GW, _payload(key, [_reading(s) for s in range(100)]))
        assert ack is not None and {r.status for r in ack.results} == {AckStatus.STORED}
        workers = multiprocessing.active_children()
        assert workers, "no verification process"
        for worker in workers:
            os.kill(worker.pid, signal.SIGKILL)  # type: ignore[arg-type]
            worker.join(10)
        for batch in ("b2", "b3"):  # the message during the breakdown, and the one after it
            start = 100 if batch == "b2" else 200
            payload = json.loads(_payload(key, [_reading(s) for s in range(start, start + 100)], batch=batch))
            payload["readings"][7]["sig"] = "00" * 64
            ack = await ingest.handle(GW, json.dumps(payload).encode())
            assert ack is not None
            assert [(r.seq, r.reason) for r in ack.results if r.status is AckStatus.REJECTED] == [
                (start + 7, "bad_signature")
            ]
        assert await storage.reading_count(GW) == 298
        assert ingest.log.events["verify_processes"] == 1
    finally:
        ingest.close()
