"""The signed-reading wire format, version 1 — the one definition used by gateway, backend and programs.

Layout (docs/reading-format.md is the normative description; offsets are bytes, little-endian)::

    0   4  magic         b"GTXR"  domain separation: these bytes are never a valid anything-else
    4   1  version       1
    5   1  flags         bit0-1 clock source, bit2 meter error, bit3 power present (others must be 0)
    6   2  reserved      must be 0
    8  16  meter_id      ASCII [A-Za-z0-9._:-], 1..16 chars, NUL-padded on the right
   24   8  seq           u64, strictly increasing per meter
   32   8  timestamp_ms  u64, UTC milliseconds since the Unix epoch
   40   8  import_wh     u64, cumulative energy imported from the grid, Wh
   48   8  export_wh     u64, cumulative energy exported to the grid, Wh
   56   4  power_w       i32, total active power, + import / - export; 0 unless flags bit3
   60      (end: a v1 reading is exactly 60 bytes)

The Ed25519 signature (64 bytes) is over exactly these 60 bytes.  Encoding is canonical: every
field has one valid representation, so a signature can never be re-used for a different byte string
that decodes to the same reading.
"""

from __future__ import annotations

import enum
import re
import struct
from dataclasses import dataclass

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

__all__ = [
    "MAGIC",
    "READING_LEN",
    "SIGNATURE_LEN",
    "VERSION",
    "ClockSource",
    "Flags",
    "Reading",
    "ReadingFormatError",
    "SignatureError",
    "SignedReading",
    "decode",
    "encode",
    "sign",
    "verify",
]

MAGIC = b"GTXR"
VERSION = 1
READING_LEN = 60
SIGNATURE_LEN = 64
METER_ID_LEN = 16

_LAYOUT = struct.Struct("<4sBBH16sQQQQi")
assert _LAYOUT.size == READING_LEN

_U64_MAX = (1 << 64) - 1
_I32_MIN, _I32_MAX = -(1 << 31), (1 << 31) - 1
_METER_ID_RE = re.compile(rb"[A-Za-z0-9._:\-]{1,16}")


class ClockSource(enum.IntEnum):
    """Where the gateway's timestamp came from (flags bits 0-1)."""

    UNSYNCED = 0  # free-running system clock: order is trustworthy, wall time may drift
    NTP = 1
    GNSS = 2  # GNSS or PTP disciplined


class Flags(enum.IntFlag):
    CLOCK_MASK = 0b0000_0011
    METER_ERROR = 0b0000_0100  # the meter or the gateway saw a fault: never mint from this reading
    POWER_PRESENT = 0b0000_1000


_KNOWN_FLAG_BITS = int(Flags.CLOCK_MASK | Flags.METER_ERROR | Flags.POWER_PRESENT)


class ReadingFormatError(ValueError):
    """Bytes or fields that are not a valid v1 reading. ``code`` is stable and machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class SignatureError(ValueError):
    """The signature does not verify for the given public key and reading bytes."""


@dataclass(frozen=True, slots=True)
class Reading:
    """One meter reading as signed on the gateway. Energies are cumulative register values, not deltas."""

    meter_id: str
    seq: int
    timestamp_ms: int
    import_wh: int
    export_wh: int
    power_w: int | None = None
    clock: ClockSource = ClockSource.UNSYNCED
    meter_error: bool = False

    def __post_init__(self) -> None:
        _check_meter_id(self.meter_id.encode("ascii", "replace"))
        for name in ("seq", "timestamp_ms", "import_wh", "export_wh"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _U64_MAX:
                raise ReadingFormatError("field_range", f"{name}={value!r} is not an unsigned 64-bit integer")
        if self.power_w is not None and (
            not isinstance(self.power_w, int) or not _I32_MIN <= self.power_w <= _I32_MAX
        ):
            raise ReadingFormatError("field_range", f"power_w={self.power_w!r} is not a signed 32-bit integer")
        if self.clock not in ClockSource.__members__.values():
            raise ReadingFormatError("field_range", f"clock={self.clock!r} is not a known clock source")

    @property
    def flags(self) -> int:
        bits = int(self.clock)
        if self.meter_error:
            bits |= Flags.METER_ERROR
        if self.power_w is not None:
            bits |= Flags.POWER_PRESENT
        return bits


@dataclass(frozen=True, slots=True)
class SignedReading:
    """The 60 reading bytes and the 64-byte Ed25519 signature over them."""

    data: bytes
    signature: bytes

    @property
    def reading(self) -> Reading:
        return decode(self.data)


def _check_meter_id(raw: bytes) -> None:
    if not _METER_ID_RE.fullmatch(raw):
        raise ReadingFormatError(
            "meter_id", f"meter id {raw!r} must be 1-16 characters from [A-Za-z0-9._:-]"
        )


def encode(reading: Reading) -> bytes:
    return _LAYOUT.pack(
        MAGIC,
        VERSION,
        reading.flags,
        0,
        reading.meter_id.encode("ascii").ljust(METER_ID_LEN, b"\0"),
        reading.seq,
        reading.timestamp_ms,
        reading.import_wh,
        reading.export_wh,
        reading.power_w if reading.power_w is not None else 0,
    )


def decode(data: bytes) -> Reading:
    """Parse v1 reading bytes, refusing anything non-canonical with a precise ``ReadingFormatError``."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ReadingFormatError("type", f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < 5:
        raise ReadingFormatError("length", f"{len(data)} bytes is too short to hold a header (need 5)")
    if data[:4] != MAGIC:
        raise ReadingFormatError("prefix", f"prefix {data[:4]!r} is not {MAGIC!r}: not a GridTokenX reading")
    if data[4] != VERSION:
        raise ReadingFormatError("version", f"unknown reading version {data[4]} (this code knows {VERSION})")
    if len(data) != READING_LEN:
        raise ReadingFormatError("length", f"a v1 reading is {READING_LEN} bytes, got {len(data)}")
    _, _, flags, reserved, raw_id, seq, ts, imp, exp, power = _LAYOUT.unpack(data)
    if flags & ~_KNOWN_FLAG_BITS:
        raise ReadingFormatError("flags", f"unknown flag bits 0x{flags & ~_KNOWN_FLAG_BITS:02x} set")
    clock_bits = flags & Flags.CLOCK_MASK
    if clock_bits not in ClockSource.__members__.values():
        raise ReadingFormatError("flags", f"clock source {clock_bits} is reserved")
    if reserved:
        raise ReadingFormatError("reserved", f"reserved bytes 6-7 must be zero, got 0x{reserved:04x}")
    id_bytes = raw_id.rstrip(b"\0")
    if b"\0" in id_bytes:
        raise ReadingFormatError("meter_id", "meter id has a NUL byte before its end")
    _check_meter_id(id_bytes)
    power_present = bool(flags & Flags.POWER_PRESENT)
    if not power_present and power != 0:
        raise ReadingFormatError("power", "power_w must be 0 when the power-present flag is clear")
    return Reading(
        meter_id=id_bytes.decode("ascii"),
        seq=seq,
        timestamp_ms=ts,
        import_wh=imp,
        export_wh=exp,
        power_w=power if power_present else None,
        clock=ClockSource(clock_bits),
        meter_error=bool(flags & Flags.METER_ERROR),
    )


def sign(reading: Reading, key: SigningKey) -> SignedReading:
    data = encode(reading)
    return SignedReading(data=data, signature=key.sign(data).signature)


def verify(data: bytes, signature: bytes, public_key: bytes) -> Reading:
    """Check format and signature; return the decoded reading or raise."""
    reading = decode(data)
    if len(signature) != SIGNATURE_LEN:
        raise SignatureError(f"signature must be {SIGNATURE_LEN} bytes, got {len(signature)}")
    try:
        VerifyKey(bytes(public_key)).verify(bytes(data), bytes(signature))
    except (BadSignatureError, ValueError) as exc:
        raise SignatureError(f"signature does not verify for meter {reading.meter_id} seq {reading.seq}") from exc
    return reading
