"""Every implementation of the reading format is tested against tests/vectors/reading-v1.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from gridtokenx.reading import (
    READING_LEN,
    ClockSource,
    Reading,
    ReadingFormatError,
    SignatureError,
    decode,
    encode,
    sign,
    verify,
)

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "reading-v1.json").read_text())


def _reading(fields: dict) -> Reading:
    return Reading(
        meter_id=fields["meter_id"],
        seq=fields["seq"],
        timestamp_ms=fields["timestamp_ms"],
        import_wh=fields["import_wh"],
        export_wh=fields["export_wh"],
        power_w=fields["power_w"],
        clock=ClockSource[fields["clock"].upper()],
        meter_error=fields["meter_error"],
    )


@pytest.mark.parametrize("vec", VECTORS["valid"], ids=lambda v: v["name"])
def test_valid_vector_encodes_decodes_and_signs(vec: dict) -> None:
    reading = _reading(vec["fields"])
    data = bytes.fromhex(vec["bytes_hex"])
    assert encode(reading) == data
    assert decode(data) == reading
    key = SigningKey(bytes.fromhex(vec["seed_hex"]))
    assert bytes(key.verify_key).hex() == vec["public_key_hex"]
    signed = sign(reading, key)
    assert signed.signature.hex() == vec["signature_hex"]
    assert verify(data, signed.signature, bytes(key.verify_key)) == reading


@pytest.mark.parametrize("vec", VECTORS["invalid"], ids=lambda v: v["name"])
def test_invalid_vector_gives_its_precise_error(vec: dict) -> None:
    with pytest.raises(ReadingFormatError) as info:
        decode(bytes.fromhex(vec["bytes_hex"]))
    assert info.value.code == vec["error"]


def test_documented_offsets_hold_independently_of_struct() -> None:
    # Built by hand from the offsets in docs/reading-format.md, not through the module's struct.
    vec = VECTORS["valid"][1]
    f = vec["fields"]
    flags = 1 | 0x08  # NTP clock, power present
    manual = (
        b"GTXR" + bytes([1, flags]) + b"\0\0"
        + f["meter_id"].encode().ljust(16, b"\0")
        + f["seq"].to_bytes(8, "little")
        + f["timestamp_ms"].to_bytes(8, "little")
        + f["import_wh"].to_bytes(8, "little")
        + f["export_wh"].to_bytes(8, "little")
        + f["power_w"].to_bytes(4, "little", signed=True)
    )
    assert len(manual) == READING_LEN
    assert manual.hex() == vec["bytes_hex"]


def test_signature_by_another_key_or_over_other_bytes_is_refused() -> None:
    vec = VECTORS["valid"][1]
    data = bytes.fromhex(vec["bytes_hex"])
    sig = bytes.fromhex(vec["signature_hex"])
    other = bytes(SigningKey(b"\x07" * 32).verify_key)
    with pytest.raises(SignatureError):
        verify(data, sig, other)
    tampered = bytearray(data)
    tampered[40] ^= 1  # one Wh more imported
    with pytest.raises(SignatureError):
        verify(bytes(tampered), sig, bytes.fromhex(vec["public_key_hex"]))
    with pytest.raises(SignatureError, match="64 bytes"):
        verify(data, sig[:63], bytes.fromhex(vec["public_key_hex"]))


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"meter_id": ""}, "meter id"),
        ({"meter_id": "x" * 17}, "meter id"),
        ({"meter_id": "bad id"}, "meter id"),
        ({"meter_id": "mèter"}, "meter id"),
        ({"seq": -1}, "seq"),
        ({"import_wh": 2**64}, "import_wh"),
        ({"power_w": 2**31}, "power_w"),
    ],
)
def test_out_of_range_fields_are_refused_when_built(kwargs: dict, fragment: str) -> None:
    base = {"meter_id": "m", "seq": 1, "timestamp_ms": 1, "import_wh": 1, "export_wh": 1}
    with pytest.raises(ReadingFormatError, match=fragment):
        Reading(**{**base, **kwargs})
