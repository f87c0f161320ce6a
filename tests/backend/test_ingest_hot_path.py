"""Ingest's hot path (header cache, bare libsodium call, tuple comparison of claims) gives exactly the
verdict of the reference functions — decode(), verify() and check_claims() — for good entries and for
every single-byte corruption of signed bytes, plus claims that lie."""

from __future__ import annotations

import random

from nacl.signing import SigningKey

from backend.ingest.pipeline import _check_entries
from backend.storage import I64_MAX
from gridtokenx.batch import BatchEntry, BatchFormatError, check_claims, decode_batch, encode_batch, reading_fields
from gridtokenx.reading import ClockSource, Reading, ReadingFormatError, SignatureError, decode, sign, verify

KEY = SigningKey(b"\x07" * 32)
PK = bytes(KEY.verify_key)


def _reference(entry: BatchEntry) -> tuple[tuple[str, int] | None, str | None]:
    try:
        reading = decode(entry.data)
    except ReadingFormatError as exc:
        return entry.key, f"format:{exc.code}"
    key = (reading.meter_id, reading.seq)
    try:
        verify(entry.data, entry.signature, PK)
    except SignatureError:
        return key, "bad_signature"
    try:
        check_claims(entry, reading)
    except BatchFormatError:
        return key, "claims_mismatch"
    if max(reading.seq, reading.import_wh, reading.export_wh, reading.timestamp_ms) > I64_MAX:
        return key, "out_of_range"
    return key, None


def _readings() -> list[Reading]:
    out = []
    for i in range(12):
        out.append(
            Reading(
                meter_id=f"m-{i % 3}",
                seq=(1 << 40) + i,
                timestamp_ms=1_760_000_000_000 + i,
                import_wh=1000 + i,
                export_wh=i,
                power_w=None if i % 4 == 0 else -50 + i,
                clock=ClockSource(i % 3),
                meter_error=i % 5 == 0,
            )
        )
    out.append(Reading(meter_id="big", seq=1 << 63, timestamp_ms=1, import_wh=2, export_wh=3))
    return out


def test_hot_path_agrees_with_the_reference_functions() -> None:
    rng = random.Random(20261125)
    readings = _readings()
    entries = list(decode_batch(encode_batch("gw", "b", 1, [(r, sign(r, KEY)) for r in readings])).entries)
    # Every byte position corrupted in a few ways, re-signed so that format (not signature) is judged,
    # and also left with the old signature.
    for r in readings[:4]:
        good = sign(r, KEY).data
        for pos in range(len(good)):
            for value in {0, 0xFF, good[pos] ^ 1, rng.randrange(256)}:
                data = good[:pos] + bytes([value]) + good[pos + 1 :]
                claims = reading_fields(r)
                entries.append(BatchEntry(data, KEY.sign(data).signature, claims))
                entries.append(BatchEntry(data, sign(r, KEY).signature, claims))
    # Claims that lie about one field at a time, including types JSON could carry.
    for r in readings[:3]:
        signed = sign(r, KEY)
        for field, bad in [
            ("meter_id", "m-9"),
            ("seq", r.seq + 1),
            ("seq", str(r.seq)),
            ("timestamp_ms", None),
            ("import_wh", r.import_wh + 1),
            ("export_wh", float("nan")),
            ("power_w", 0 if r.power_w is None else None),
            ("clock", "gnss" if r.clock is not ClockSource.GNSS else "ntp"),
            ("meter_error", not r.meter_error),
        ]:
            entries.append(BatchEntry(signed.data, signed.signature, {**reading_fields(r), field: bad}))
        claims = reading_fields(r)
        del claims["power_w"]
        entries.append(BatchEntry(signed.data, signed.signature, claims))

    headers: dict[bytes, tuple[str, str, bool, bool, int]] = {}
    # Twice through the same cache: a header judged once must give the same verdicts after.
    for _ in range(2):
        got = _check_entries(entries, PK, None, "gw", 5, headers)
        for entry, (key, row, why) in zip(entries, got, strict=True):
            assert (key, why) == _reference(entry), entry.data.hex()
            if why is None:
                assert row is not None
                reading = decode(entry.data)
                assert (row.meter_id, row.seq, row.timestamp_ms, row.import_wh, row.export_wh, row.power_w) == (
                    reading.meter_id,
                    reading.seq,
                    reading.timestamp_ms,
                    reading.import_wh,
                    reading.export_wh,
                    reading.power_w,
                )
                assert (row.flags, row.data, row.signature, row.gateway_id, row.received_ms) == (
                    reading.flags,
                    entry.data,
                    entry.signature,
                    "gw",
                    5,
                )
    verdicts = {why for _, _, why in got}
    assert {None, "bad_signature", "claims_mismatch", "out_of_range"} <= verdicts
    assert any(v and v.startswith("format:") for v in verdicts)
    # Without a usable key every well-formed entry is refused with the given reason.
    refused = _check_entries(entries[:5], None, "gateway_disabled", "gw", 5, headers)
    assert [why for _, _, why in refused] == ["gateway_disabled"] * 5
