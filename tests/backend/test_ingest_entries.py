"""Every entry of a readings message is answered for itself, in batch order, on both storage dialects:
repeats inside one message, one malformed entry among valid ones, claims of the wrong JSON type,
hex in undocumented forms, and values the database would refuse. Nothing is acknowledged that the
database does not hold as a reading or in quarantine."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from backend.ingest.pipeline import Ingest
from backend.storage import Storage, open_storage
from gridtokenx.batch import Ack, AckStatus, decode_status, encode_batch
from gridtokenx.reading import Reading, encode, sign
from tests.support.postgres import temp_database

GW = "gw-e"
KEY = SigningKey(b"\x05" * 32)


@pytest.fixture(params=["postgres", "sqlite"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
        with temp_database() as url:
            async with await open_storage(url) as s:
                await s.add_gateway(GW, bytes(KEY.verify_key))
                yield s
    else:
        async with await open_storage(f"sqlite:///{tmp_path}/backend.db") as s:
            await s.add_gateway(GW, bytes(KEY.verify_key))
            yield s


def _reading(seq: int, meter: str = "m1", imp: int = 1000) -> Reading:
    return Reading(meter_id=meter, seq=seq, timestamp_ms=1_760_000_000_000 + seq, import_wh=imp, export_wh=5, power_w=7)


def _message(readings: list[Reading], batch: str = "b1") -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(encode_batch(GW, batch, 1, [(r, sign(r, KEY)) for r in readings]))
    return obj


async def _send(ingest: Ingest, message: dict[str, Any] | bytes) -> Ack:
    payload = message if isinstance(message, bytes) else json.dumps(message).encode()
    ack = await ingest.handle(GW, payload)
    assert ack is not None
    return ack


async def _accounted(storage: Storage, ack: Ack) -> None:
    """Every stored/duplicate answer is a reading the database holds with those bytes."""
    held = {(r.meter_id, r.seq) for r in await storage.readings(GW)}
    for r in ack.results:
        if r.status is not AckStatus.REJECTED:
            assert (r.meter_id, r.seq) in held, r


async def test_the_same_reading_twice_in_one_message_is_stored_then_duplicate(storage: Storage) -> None:
    ingest = Ingest(storage)
    r1, r2 = _reading(1), _reading(2)
    msg = _message([r1, r2, r1, r1])
    ack = await _send(ingest, msg)
    assert [(r.seq, r.status) for r in ack.results] == [
        (1, AckStatus.STORED),
        (2, AckStatus.STORED),
        (1, AckStatus.DUPLICATE),
        (1, AckStatus.DUPLICATE),
    ]
    assert await storage.reading_count(GW) == 2 and await storage.quarantine_counts() == {}
    assert (ingest.stats.stored, ingest.stats.duplicates) == (2, 2)
    # Sent again: every one of them is a duplicate now, the repeats included.
    again = await _send(ingest, _message([r1, r1], batch="b2"))
    assert [r.status for r in again.results] == [AckStatus.DUPLICATE, AckStatus.DUPLICATE]
    await _accounted(storage, ack)
    ingest.close()


async def test_other_bytes_under_a_meter_and_seq_of_the_same_message_are_a_seq_conflict(storage: Storage) -> None:
    ingest = Ingest(storage)
    first, other = _reading(5, imp=100), _reading(5, imp=999)  # both validly signed, same (meter, seq)
    ack = await _send(ingest, _message([first, _reading(6), other]))
    assert [(r.seq, r.status, r.reason) for r in ack.results] == [
        (5, AckStatus.STORED, None),
        (6, AckStatus.STORED, None),
        (5, AckStatus.REJECTED, "seq_conflict"),
    ]
    stored = {r.seq: r.data for r in await storage.readings(GW)}
    assert stored[5] == encode(first)
    assert await storage.quarantine_counts() == {"seq_conflict": 1}
    # The conflicting one is kept, bytes and all.
    held = await storage.fetch("SELECT meter_id, seq, data FROM quarantine WHERE reason = 'seq_conflict'")
    assert [(m, s, bytes(d)) for m, s, d in held] == [("m1", 5, encode(other))]
    # A message whose first copy conflicts with the database: its identical repeat conflicts too.
    ack = await _send(ingest, _message([other, other], batch="b2"))
    assert [(r.status, r.reason) for r in ack.results] == [(AckStatus.REJECTED, "seq_conflict")] * 2
    assert await storage.quarantine_counts() == {"seq_conflict": 3}
    # Whatever the order inside a message, the bytes the database holds are a duplicate, others conflict.
    ack = await _send(ingest, _message([other, first], batch="b3"))
    assert [(r.status, r.reason) for r in ack.results] == [
        (AckStatus.REJECTED, "seq_conflict"),
        (AckStatus.DUPLICATE, None),
    ]
    await _accounted(storage, ack)
    ingest.close()


async def test_one_malformed_entry_is_answered_by_itself_and_the_good_ones_are_stored(storage: Storage) -> None:
    ingest = Ingest(storage)
    readings = [_reading(s) for s in range(10, 18)]
    msg = _message(readings)
    entries = msg["readings"]
    entries[1]["data"] = entries[1]["data"][:-2]  # 59 bytes
    entries[2]["data"] = entries[2]["data"][:8] + "02" + entries[2]["data"][10:]  # version 2
    entries[3]["sig"] = entries[3]["sig"][:-2]  # 63-byte signature
    entries[4]["data"] = "zz" + entries[4]["data"][2:]  # not hex
    entries[5] = ["not", "an", "object"]
    entries[6]["data"] = entries[6]["data"].upper()  # hex, but not the documented form
    ack = await _send(ingest, msg)
    got = [(r.meter_id, r.seq, r.status, r.reason) for r in ack.results]
    assert got == [
        ("m1", 10, AckStatus.STORED, None),
        ("m1", 11, AckStatus.REJECTED, "format:length"),
        ("m1", 12, AckStatus.REJECTED, "format:version"),
        ("m1", 13, AckStatus.REJECTED, "bad_signature"),
        ("m1", 14, AckStatus.REJECTED, "malformed:entry"),
        (None, None, AckStatus.REJECTED, "malformed:entry"),  # it names no (meter, seq) to answer for
        ("m1", 16, AckStatus.REJECTED, "malformed:entry"),
        ("m1", 17, AckStatus.STORED, None),
    ]
    assert sorted(r.seq for r in await storage.readings(GW)) == [10, 17]
    assert await storage.quarantine_counts() == {
        "format:length": 1,
        "format:version": 1,
        "bad_signature": 1,
        "malformed:entry": 3,
    }
    # The entry that was no reading at all is kept as its JSON text.
    rows = await storage.fetch("SELECT payload FROM quarantine WHERE reason = 'malformed:entry' AND seq IS NULL")
    assert [json.loads(bytes(p)) for (p,) in rows] == [{}]
    await _accounted(storage, ack)
    ingest.close()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("seq", 12.0),  # equal to 12 in Python, but not the integer the bytes hold
        ("meter_error", 0),
        ("import_wh", True),
        ("export_wh", 5.0),
        ("power_w", 7.0),
        ("power_w", "7"),
        ("timestamp_ms", None),
    ],
)
async def test_claims_must_match_in_value_and_json_type(storage: Storage, field: str, value: object) -> None:
    ingest = Ingest(storage)
    r = _reading(12, imp=1)
    msg = _message([r])
    if field == "import_wh" and value is True:
        assert msg["readings"][0]["import_wh"] == 1  # True == 1: only the type tells them apart
    msg["readings"][0][field] = value
    ack = await _send(ingest, msg)
    assert [(r.status, r.reason) for r in ack.results] == [(AckStatus.REJECTED, "claims_mismatch")]
    ingest.close()


async def test_a_missing_claim_is_a_mismatch_even_where_its_value_would_be_null(storage: Storage) -> None:
    ingest = Ingest(storage)
    r = Reading(meter_id="m1", seq=3, timestamp_ms=1, import_wh=1, export_wh=1, power_w=None)
    msg = _message([r])
    del msg["readings"][0]["power_w"]
    ack = await _send(ingest, msg)
    assert [(x.status, x.reason) for x in ack.results] == [(AckStatus.REJECTED, "claims_mismatch")]
    ingest.close()


async def test_hex_is_accepted_only_in_its_documented_form(storage: Storage) -> None:
    ingest = Ingest(storage)
    msg = _message([_reading(1), _reading(2), _reading(3)])
    entries = msg["readings"]
    entries[0]["sig"] = entries[0]["sig"].upper()
    entries[1]["data"] = " ".join(entries[1]["data"][i : i + 2] for i in range(0, 120, 2))  # spaced
    ack = await _send(ingest, msg)
    assert [(r.seq, r.status, r.reason) for r in ack.results] == [
        (1, AckStatus.REJECTED, "bad_signature"),  # a signature not in lowercase hex is no signature
        (2, AckStatus.REJECTED, "malformed:entry"),
        (3, AckStatus.STORED, None),
    ]
    ingest.close()


async def test_values_the_database_would_refuse_are_normalised_before_it(storage: Storage) -> None:
    """A hostile claimed meter id (NUL, lone surrogate, too long) or seq (≥ 2^63, ≥ 2^64, negative) on an
    entry whose bytes are bad: quarantined at once, the claim kept only as far as it is valid, the bytes
    as sent. No storage error, no retry."""
    ingest = Ingest(storage)
    good = _reading(1)
    bad_data = encode(_reading(2))[:-1].hex()  # 59 bytes: format:length, answered by its claims
    claims = [
        ("nul\u0000id", 2),
        ("\ud800", 2),
        ("m" * 17, 2),
        ("m1", 1 << 63),
        ("m1", 1 << 64),
        ("m1", -1),
    ]
    msg = _message([good])
    for meter, seq in claims:
        msg["readings"].append({**msg["readings"][0], "meter_id": meter, "seq": seq, "data": bad_data})
    # json.dumps writes the lone surrogate as \ud800, as a hostile sender would.
    ack = await _send(ingest, json.dumps(msg).encode())
    assert ack.results[0].status is AckStatus.STORED
    answered = [(r.meter_id, r.seq, r.reason) for r in ack.results[1:]]
    assert answered == [
        (None, None, "format:length"),
        (None, None, "format:length"),
        (None, None, "format:length"),
        ("m1", 1 << 63, "format:length"),  # a u64 a gateway could hold: answered, stored as NULL
        (None, None, "format:length"),
        (None, None, "format:length"),
    ]
    rows = await storage.fetch("SELECT meter_id, seq, data FROM quarantine ORDER BY id")
    assert [(m, s) for m, s, _ in rows] == [(None, None)] * 3 + [("m1", None)] + [(None, None)] * 2
    assert all(bytes(d) == bytes.fromhex(bad_data) for _, _, d in rows)
    ingest.close()


def test_a_status_time_beyond_bigint_is_refused_before_the_database() -> None:
    from gridtokenx.batch import BatchFormatError

    base = {"v": 1, "gateway": GW, "state": "online"}
    assert decode_status(json.dumps({**base, "ts_ms": (1 << 63) - 1}).encode()).timestamp_ms == (1 << 63) - 1
    for ts in (1 << 63, -1, 1.5, True, "1"):
        with pytest.raises(BatchFormatError):
            decode_status(json.dumps({**base, "ts_ms": ts}).encode())
    with pytest.raises(BatchFormatError):
        decode_status(json.dumps({**base, "ts_ms": 1, "software": "x\u0000"}).encode())
