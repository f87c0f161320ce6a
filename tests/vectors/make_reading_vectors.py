"""Writes tests/vectors/reading-v1.json. Run once when the format changes; the JSON is committed and
every implementation (Python here, C on chain, third parties) is tested against it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from nacl.signing import SigningKey

from gridtokenx.reading import ClockSource, Reading, encode

OUT = Path(__file__).with_name("reading-v1.json")


def _key(label: str) -> SigningKey:
    # Deterministic, documented seeds so anyone can re-derive the keys.
    return SigningKey(hashlib.sha256(label.encode()).digest())


def main() -> None:
    cases = [
        ("minimal", "m1", Reading("m1", 0, 0, 0, 0)),
        (
            "sdm630-ntp-power",
            "gateway-a",
            Reading("SDM630-000042", 1, 1_764_072_000_123, 12_345_678, 9_876_543, power_w=-2_450,
                    clock=ClockSource.NTP),
        ),
        (
            "meter-error-gnss",
            "gateway-a",
            Reading("sunspec:7", 2**40 + 5, 1_764_072_900_000, 0, 2**63, power_w=None,
                    clock=ClockSource.GNSS, meter_error=True),
        ),
        (
            "maxima",
            "gateway-b",
            Reading("A-Za-z0-9._:-xyz", 2**64 - 1, 2**64 - 1, 2**64 - 1, 2**64 - 1, power_w=2**31 - 1),
        ),
    ]
    valid = []
    for name, key_label, reading in cases:
        key = _key(key_label)
        data = encode(reading)
        valid.append({
            "name": name,
            "seed_hex": bytes(key).hex(),
            "seed_derivation": f"sha256({key_label!r})",
            "public_key_hex": bytes(key.verify_key).hex(),
            "fields": {
                "meter_id": reading.meter_id,
                "seq": reading.seq,
                "timestamp_ms": reading.timestamp_ms,
                "import_wh": reading.import_wh,
                "export_wh": reading.export_wh,
                "power_w": reading.power_w,
                "clock": reading.clock.name.lower(),
                "meter_error": reading.meter_error,
            },
            "bytes_hex": data.hex(),
            "signature_hex": key.sign(data).signature.hex(),
        })
    good = bytes.fromhex(valid[1]["bytes_hex"])
    invalid = [
        {"name": "empty", "bytes_hex": "", "error": "length"},
        {"name": "truncated", "bytes_hex": good[:59].hex(), "error": "length"},
        {"name": "trailing-byte", "bytes_hex": (good + b"\0").hex(), "error": "length"},
        {"name": "wrong-prefix", "bytes_hex": (b"GTXQ" + good[4:]).hex(), "error": "prefix"},
        {"name": "version-2", "bytes_hex": (good[:4] + b"\x02" + good[5:]).hex(), "error": "version"},
        {"name": "unknown-flag", "bytes_hex": (good[:5] + b"\x19" + good[6:]).hex(), "error": "flags"},
        {"name": "reserved-clock", "bytes_hex": (good[:5] + b"\x0b" + good[6:]).hex(), "error": "flags"},
        {"name": "reserved-nonzero", "bytes_hex": (good[:6] + b"\x01\x00" + good[8:]).hex(), "error": "reserved"},
        {"name": "empty-meter-id", "bytes_hex": (good[:8] + b"\0" * 16 + good[24:]).hex(), "error": "meter_id"},
        {"name": "meter-id-inner-nul",
         "bytes_hex": (good[:8] + b"AB\0CD".ljust(16, b"\0") + good[24:]).hex(), "error": "meter_id"},
        {"name": "meter-id-space",
         "bytes_hex": (good[:8] + b"AB CD".ljust(16, b"\0") + good[24:]).hex(), "error": "meter_id"},
        {"name": "power-without-flag",
         "bytes_hex": (good[:5] + b"\x01" + good[6:]).hex(), "error": "power"},
    ]
    OUT.write_text(json.dumps({"format": "gridtokenx reading v1", "valid": valid, "invalid": invalid},
                              indent=2) + "\n")


if __name__ == "__main__":
    main()
