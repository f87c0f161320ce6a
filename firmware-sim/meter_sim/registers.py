"""Declarative register tables: a device is a list of points (address, type, measurement, scale), and
this module turns a set of measurements into the 16-bit words a Modbus read returns.

Encoding rules, one per type (``scale`` is a power of ten; a register holds ``value / 10**scale``):

- FLOAT32: IEEE-754 single precision, high word first (Eastron, SunSpec model 21x). Rounded to nearest.
- INT16: two's complement, rounded to nearest and clamped to +-32767 (0x8000 means "not implemented").
- UINT16: rounded to nearest, clamped to 0..65534 (0xFFFF means "not implemented"); constants such as
  SunSpec's end marker 0xFFFF are stored exactly.
- ACC32: unsigned 32-bit accumulator, high word first, *floored* to whole units (a meter only counts
  energy it has fully measured) and wrapping at 2**32 as real accumulators do. 0 = not implemented.
- SUNSSF: a constant signed scale-factor exponent; 0x8000 when not implemented.
- STRING: constant text, UTF-8, NUL padded to the point's size.
- BITFIELD32: a constant (event flags); 0xFFFFFFFF when not implemented.

A point without a measurement or constant encodes the SunSpec "not implemented" marker of its type
(NaN for FLOAT32). Addresses inside a map's served range that no point covers read as 0.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from meter_sim.errors import ConfigError, ModbusExceptionReply
from meter_sim.quantities import Quantity

ILLEGAL_FUNCTION = 0x01
ILLEGAL_DATA_ADDRESS = 0x02
ILLEGAL_DATA_VALUE = 0x03
SERVER_DEVICE_FAILURE = 0x04

MAX_READ_COUNT = 125
"""Registers one read may ask for (Modbus application protocol, functions 03 and 04)."""


class Kind(Enum):
    FLOAT32 = "float32"
    INT16 = "int16"
    UINT16 = "uint16"
    ACC32 = "acc32"
    SUNSSF = "sunssf"
    STRING = "string"
    BITFIELD32 = "bitfield32"


_SIZES = {
    Kind.FLOAT32: 2,
    Kind.INT16: 1,
    Kind.UINT16: 1,
    Kind.ACC32: 2,
    Kind.SUNSSF: 1,
    Kind.BITFIELD32: 2,
}



def register_count(kind: Kind) -> int:
    """Registers a value of ``kind`` takes (STRING has no fixed size)."""
    try:
        return _SIZES[kind]
    except KeyError:
        raise ConfigError(f"{kind.value} has no fixed size") from None


NOT_IMPLEMENTED: dict[Kind, tuple[int, ...]] = {
    Kind.FLOAT32: (0x7FC0, 0x0000),
    Kind.INT16: (0x8000,),
    Kind.UINT16: (0xFFFF,),
    Kind.ACC32: (0x0000, 0x0000),
    Kind.SUNSSF: (0x8000,),
    Kind.BITFIELD32: (0xFFFF, 0xFFFF),
}


@dataclass(frozen=True)
class Point:
    """One value in a register table. Exactly one of ``quantity`` / ``const`` is set, or neither for a
    not-implemented point."""

    address: int
    kind: Kind
    quantity: Quantity | None = None
    scale: int = 0
    const: float | int | str | None = None
    size: int = 0
    """Registers taken; derived from ``kind`` except for STRING, where it must be given."""
    name: str = ""

    def __post_init__(self) -> None:
        if self.kind is Kind.STRING:
            if self.size <= 0 or not isinstance(self.const, str):
                raise ConfigError(f"string point {self.name or hex(self.address)} needs a size and text")
            if len(self.const.encode()) > 2 * self.size:
                raise ConfigError(f"text {self.const!r} does not fit {self.size} registers")
        else:
            object.__setattr__(self, "size", _SIZES[self.kind])
        if self.quantity is not None and self.const is not None:
            raise ConfigError(f"point {self.name or hex(self.address)} has both a measurement and a constant")
        if self.kind is Kind.UINT16 and self.const is not None and not (
            isinstance(self.const, int) and 0 <= self.const <= 0xFFFF
        ):
            raise ConfigError(f"uint16 constant {self.const!r} of {self.name} outside 0..65535")
        if not 0 <= self.address <= 0xFFFF - self.size + 1:
            raise ConfigError(f"point {self.name} address {self.address} outside 0..65535")

    @property
    def end(self) -> int:
        return self.address + self.size

    def encode(self, values: Mapping[Quantity, float]) -> tuple[int, ...]:
        if self.kind is Kind.STRING:
            assert isinstance(self.const, str)
            raw = self.const.encode().ljust(2 * self.size, b"\0")
            return struct.unpack(f">{self.size}H", raw)
        if self.const is not None and self.kind is Kind.UINT16:
            # Constants are exact: markers such as SunSpec's end id 0xFFFF must not be clamped.
            return (int(self.const),)
        if self.const is not None:
            value = float(self.const)
        elif self.quantity is not None:
            value = values[self.quantity]
        else:
            return NOT_IMPLEMENTED[self.kind]
        return encode_value(self.kind, value, self.scale)


def encode_value(kind: Kind, value: float, scale: int = 0) -> tuple[int, ...]:
    """Words for ``value`` (in base units) stored as ``kind`` with exponent ``scale``."""
    if kind is Kind.FLOAT32:
        return struct.unpack(">HH", struct.pack(">f", value / 10.0**scale if scale else value))
    if kind is Kind.SUNSSF:
        return (int(value) & 0xFFFF,)
    if kind is Kind.BITFIELD32:
        v = int(value) & 0xFFFFFFFF
        return (v >> 16, v & 0xFFFF)
    scaled = value / 10.0**scale if scale else value
    if not math.isfinite(scaled):
        return NOT_IMPLEMENTED[kind]
    if kind is Kind.INT16:
        return (max(-32767, min(32767, round(scaled))) & 0xFFFF,)
    if kind is Kind.UINT16:
        return (max(0, min(0xFFFE, round(scaled))),)
    if kind is Kind.ACC32:
        v = math.floor(scaled) % (1 << 32)
        return (v >> 16, v & 0xFFFF)
    raise ConfigError(f"cannot encode {kind}")


def decode_value(kind: Kind, words: Sequence[int], scale: int = 0) -> float:
    """Inverse of :func:`encode_value` (as a client decodes it): the value in base units."""
    if kind is Kind.FLOAT32:
        raw: float = struct.unpack(">f", struct.pack(">HH", *words))[0]
    elif kind is Kind.INT16:
        raw = struct.unpack(">h", struct.pack(">H", words[0]))[0]
    elif kind is Kind.UINT16 or kind is Kind.SUNSSF:
        raw = words[0]
    elif kind is Kind.ACC32 or kind is Kind.BITFIELD32:
        raw = (words[0] << 16) | words[1]
    else:
        raise ConfigError(f"cannot decode {kind}")
    return float(raw * 10.0**scale if scale else raw)


class RegisterMap:
    """The registers one function code serves, from ``start`` (inclusive) to ``end`` (exclusive)."""

    def __init__(self, function_code: int, start: int, end: int, points: Iterable[Point]) -> None:
        self.function_code = function_code
        self.start = start
        self.end = end
        self.points = tuple(sorted(points, key=lambda p: p.address))
        for p in self.points:
            if p.address < start or p.end > end:
                raise ConfigError(
                    f"fc {function_code:02d} point {p.name or hex(p.address)} at {p.address:#06x}"
                    f" lies outside the served range {start:#06x}..{end:#06x}"
                )
        for a, b in zip(self.points, self.points[1:], strict=False):
            if b.address < a.end:
                raise ConfigError(
                    f"fc {function_code:02d} points {a.name or hex(a.address)} and "
                    f"{b.name or hex(b.address)} overlap at {b.address:#06x}"
                )

    def point_at(self, address: int) -> Point:
        for p in self.points:
            if p.address == address:
                return p
        raise KeyError(f"no point starts at {address:#06x} (fc {self.function_code:02d})")

    def read(self, address: int, count: int, values: Mapping[Quantity, float]) -> list[int]:
        """The words of registers ``address .. address+count-1``, or a Modbus exception."""
        if not 1 <= count <= MAX_READ_COUNT:
            raise ModbusExceptionReply(ILLEGAL_DATA_VALUE, f"count {count} not in 1..{MAX_READ_COUNT}")
        stop = address + count
        if address < self.start or stop > self.end:
            raise ModbusExceptionReply(
                ILLEGAL_DATA_ADDRESS,
                f"fc {self.function_code:02d} registers {address:#06x}..{stop - 1:#06x} outside "
                f"{self.start:#06x}..{self.end - 1:#06x}",
            )
        words = [0] * count
        for p in self.points:
            if p.end <= address:
                continue
            if p.address >= stop:
                break
            for i, w in enumerate(p.encode(values)):
                pos = p.address + i - address
                if 0 <= pos < count:
                    words[pos] = w
        return words


class RegisterSpace:
    """Several register maps of one function code, as a meter serves them: separate blocks with
    unmapped addresses between them (a read that is not inside one block gets exception 02)."""

    def __init__(self, function_code: int, maps: Iterable[RegisterMap]) -> None:
        self.function_code = function_code
        self.maps = tuple(sorted(maps, key=lambda m: m.start))
        for m in self.maps:
            if m.function_code != function_code:
                raise ConfigError(f"map for fc {m.function_code:02d} in a space for fc {function_code:02d}")
        for a, b in zip(self.maps, self.maps[1:], strict=False):
            if b.start < a.end:
                raise ConfigError(f"fc {function_code:02d} blocks at {a.start:#06x} and {b.start:#06x} overlap")

    def point_at(self, address: int) -> Point:
        for m in self.maps:
            if m.start <= address < m.end:
                return m.point_at(address)
        raise KeyError(f"no point starts at {address:#06x} (fc {self.function_code:02d})")

    def read(self, address: int, count: int, values: Mapping[Quantity, float]) -> list[int]:
        if not 1 <= count <= MAX_READ_COUNT:
            raise ModbusExceptionReply(ILLEGAL_DATA_VALUE, f"count {count} not in 1..{MAX_READ_COUNT}")
        for m in self.maps:
            if m.start <= address and address + count <= m.end:
                return m.read(address, count, values)
        raise ModbusExceptionReply(
            ILLEGAL_DATA_ADDRESS,
            f"fc {self.function_code:02d} registers {address:#06x}..{address + count - 1:#06x} are not one "
            "served block",
        )
