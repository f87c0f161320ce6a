"""Registers -> values, and energy -> integer Wh, exactly and deterministically.

Every value is decoded to a :class:`~decimal.Decimal` that equals what the meter sent: a float32 is
widened to a Python float (exact) and then to a Decimal (exact), integers are exact, and scaling by the
table's ``scale`` and SunSpec's power-of-ten scale factors is done in decimal with enough precision to
stay exact.  Rounding happens once, in :func:`to_wh`.

Energy rounding rule (the signed reading carries integer Wh)::

    float32 kWh register -> exact decimal value of the binary float -> x 1000 -> round half to even

So 1.5 Wh rounds to 2, 2.5 Wh to 2, and the same register bits always give the same Wh on every
gateway.  Note the limits of float32 (24-bit mantissa): at 1,000 kWh one step of the register is
about 0.06 Wh, at 10,000 kWh about 1 Wh and at 100,000 kWh about 8 Wh, so a meter's Wh figure moves
in steps that grow with its total; integer SunSpec accumulators (acc32 with TotWh_SF) have no such loss.

SunSpec "not implemented" markers (int16 0x8000, uint16 0xFFFF, acc32 0, int32 0x80000000,
uint32 0xFFFFFFFF, float32 NaN, sunssf 0x8000) make a measurement absent instead of a value, but only
for tables that declare ``not_implemented_markers``: on an Eastron meter a NaN is a fault to be flagged
by :mod:`gateway.plausibility`, not a missing feature.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from decimal import ROUND_HALF_EVEN, Context, Decimal

from gateway.measurements import Measurement
from gateway.register_map import ByteOrder, DataType, Field, RegisterMap, RegisterRange, WordOrder

__all__ = [
    "EXACT_MEASUREMENTS",
    "DecodeError",
    "RegisterImage",
    "TableDecoder",
    "as_floats",
    "decode_raw",
    "decode_table",
    "to_wh",
]

# struct layouts of each type, big-endian (registers are put into big-endian order first).
_LAYOUT = {
    DataType.UINT16: struct.Struct(">H"),
    DataType.INT16: struct.Struct(">h"),
    DataType.SUNSSF: struct.Struct(">h"),
    DataType.UINT32: struct.Struct(">I"),
    DataType.ACC32: struct.Struct(">I"),
    DataType.INT32: struct.Struct(">i"),
    DataType.FLOAT32: struct.Struct(">f"),
}
# Raw integer patterns SunSpec reserves for "not implemented" (compared before sign conversion).
_NOT_IMPLEMENTED_BITS = {
    DataType.UINT16: 0xFFFF,
    DataType.INT16: 0x8000,
    DataType.SUNSSF: 0x8000,
    DataType.UINT32: 0xFFFFFFFF,
    DataType.INT32: 0x80000000,
    DataType.ACC32: 0,
}
# float32 needs up to ~112 significant digits to be written exactly; leave ample room.
_EXACT = Context(prec=200)


class DecodeError(ValueError):
    """Registers missing from a response, or a malformed table: names the register and measurement."""


class RegisterImage:
    """The registers read in one cycle, looked up by (function code, address)."""

    def __init__(self) -> None:
        self._regs: dict[tuple[int, int], int] = {}

    def add(self, request: RegisterRange, registers: Sequence[int]) -> None:
        if len(registers) != request.count:
            raise DecodeError(f"{request}: got {len(registers)} registers, asked for {request.count}")
        for i, value in enumerate(registers):
            self._regs[(request.function_code, request.address + i)] = value

    @classmethod
    def from_responses(cls, responses: Iterable[tuple[RegisterRange, Sequence[int]]]) -> RegisterImage:
        image = cls()
        for request, registers in responses:
            image.add(request, registers)
        return image

    def get(self, function_code: int, address: int, count: int) -> list[int]:
        try:
            return [self._regs[(function_code, a)] for a in range(address, address + count)]
        except KeyError as exc:
            raise DecodeError(
                f"register {exc.args[0][1]} (function {function_code}) was not read"
            ) from None


def _swap_bytes(registers: Sequence[int]) -> list[int]:
    return [((r & 0xFF) << 8) | (r >> 8) for r in registers]


def decode_raw(
    registers: Sequence[int], dtype: DataType, word_order: WordOrder = "big", byte_order: ByteOrder = "big"
) -> int | float:
    """One value as the meter meant it (an int, or a float for float32), no scaling."""
    if len(registers) != dtype.count:
        raise DecodeError(f"{dtype.value} needs {dtype.count} registers, got {len(registers)}")
    regs = _swap_bytes(registers) if byte_order == "little" else list(registers)
    if word_order == "little":
        regs.reverse()
    value: int | float = _LAYOUT[dtype].unpack(struct.pack(f">{len(regs)}H", *regs))[0]
    return value


def _raw_bits(registers: Sequence[int], f: Field) -> int:
    regs = _swap_bytes(registers) if f.byte_order == "little" else list(registers)
    if f.word_order == "little":
        regs.reverse()
    bits = 0
    for r in regs:
        bits = (bits << 16) | r
    return bits


def _is_not_implemented(registers: Sequence[int], f: Field, value: int | float) -> bool:
    if f.dtype is DataType.FLOAT32:
        return isinstance(value, float) and math.isnan(value)
    return _raw_bits(registers, f) == _NOT_IMPLEMENTED_BITS[f.dtype]


def decode_table(table: RegisterMap, image: RegisterImage) -> dict[Measurement, Decimal]:
    """Every measurement of ``table`` present in ``image``, exact and scaled to the vocabulary unit.
    A NaN or infinity from a meter without not-implemented markers is kept (as a Decimal NaN or
    Infinity) for the plausibility check to flag."""
    values: dict[Measurement, Decimal] = {}
    scale_factors: dict[tuple[int, int], int | None] = {}
    for f in table.fields:
        registers = image.get(f.function_code, f.address, f.dtype.count)
        raw = decode_raw(registers, f.dtype, f.word_order, f.byte_order)
        if table.not_implemented_markers and _is_not_implemented(registers, f, raw):
            continue
        exponent = 0
        if f.scale_factor_at is not None:
            key = (f.function_code, f.scale_factor_at)
            if key not in scale_factors:
                sf_regs = image.get(f.function_code, f.scale_factor_at, 1)
                sf = decode_raw(sf_regs, DataType.SUNSSF)
                # A scale factor outside the spec's -10..10 is as good as not implemented.
                valid = sf_regs[0] != 0x8000 and isinstance(sf, int) and -10 <= sf <= 10
                scale_factors[key] = int(sf) if valid else None
            found = scale_factors[key]
            if found is None:
                continue
            exponent = found
        value = Decimal(raw)  # exact for int and for a float32 widened to float
        if value.is_finite():
            value = _EXACT.multiply(value, f.scale).scaleb(exponent, _EXACT)
        elif value.is_infinite() and f.scale < 0:
            value = -value
        values[f.measurement] = value
    return values


def to_wh(value: Decimal) -> int:
    """The one rounding step: an exact energy in Wh to an integer, round half to even."""
    if not value.is_finite():
        raise DecodeError(f"energy {value} is not a finite number")
    return int(value.to_integral_value(rounding=ROUND_HALF_EVEN))


def as_floats(values: Mapping[Measurement, Decimal]) -> dict[str, float]:
    """The status-page view: vocabulary name -> float."""
    return {m.value: float(v) for m, v in values.items()}


# --- the compiled decoder: the poller's hot path ------------------------------------------------

# Measurements whose exact decimal value the poller needs (energy rounding, the power check).
EXACT_MEASUREMENTS = frozenset({Measurement.IMPORT_ENERGY, Measurement.EXPORT_ENERGY, Measurement.POWER_TOTAL})
_FLOAT32 = struct.Struct(">f")
_INT16 = struct.Struct(">h")


def _power_of_ten(scale: Decimal) -> int | None:
    """k when ``scale`` is exactly 10**k, else None."""
    if scale <= 0:
        return None
    t = scale.normalize().as_tuple()
    return int(t.exponent) if t.digits == (1,) and isinstance(t.exponent, int) else None


class TableDecoder:
    """A table's decoding compiled against its read plan, so a cycle's values come straight from the
    answers' bytes: no register image, no Decimal arithmetic except for the few measurements whose exact
    value matters (``exact``: energy counters and total power, for the signed reading).

    ``decode(payloads)`` returns ``(values, exact)``: every measurement as a float by vocabulary name
    (what the status page and MQTT telemetry show), and the exact Decimals of ``exact``. Both agree with
    :func:`decode_table` to the last bit: a float here is the double nearest the exact decimal value
    (IEEE multiplication and division by an exact power of ten round correctly, as ``float(Decimal)``
    does), and the Decimals are computed the same way.
    """

    def __init__(
        self,
        table: RegisterMap,
        plan: Sequence[RegisterRange],
        exact: Iterable[Measurement] = EXACT_MEASUREMENTS,
    ) -> None:
        wanted = frozenset(exact)
        self.table = table
        self.requests = tuple(plan)
        fast: list[tuple[str, int, int, float, bool]] = []
        slow: list[tuple[Field, int, int, tuple[int, int] | None, int | None, bool]] = []
        for f in table.fields:
            index, offset = self._locate(f.function_code, f.address, f.dtype.count)
            sf_at = None
            if f.scale_factor_at is not None:
                sf_at = self._locate(f.function_code, f.scale_factor_at, 1)
            exponent = _power_of_ten(f.scale)
            simple = (
                f.dtype is DataType.FLOAT32
                and f.word_order == "big"
                and f.byte_order == "big"
                and sf_at is None
                and exponent is not None
                and f.measurement not in wanted
            )
            if simple:
                assert exponent is not None
                fast.append((f.measurement.value, index, offset, 10.0 ** abs(exponent), exponent < 0))
            else:
                slow.append((f, index, offset, sf_at, exponent, f.measurement in wanted))
        self._fast = tuple(fast)
        self._slow = tuple(slow)
        self._markers = table.not_implemented_markers
        # Keep the table's field order in the result (plausibility problems are listed in that order).
        self._order = tuple(f.measurement.value for f in table.fields)
        # Where every float32 of the table sits on a float boundary of its answer and nothing needs a scale
        # factor (the Eastron tables), all answers decode in one struct call and each field is an index
        # into that tuple, visited in table order.
        self._flat: struct.Struct | None = None
        self._flat_fields: tuple[tuple[str, Measurement, int, float, bool, Decimal | None], ...] = ()
        starts, total = [], 0
        for r in self.requests:
            starts.append(total)
            total += r.count // 2
        flat: list[tuple[str, Measurement, int, float, bool, Decimal | None]] = []
        for f in table.fields:
            index, offset = self._locate(f.function_code, f.address, f.dtype.count)
            exponent = _power_of_ten(f.scale)
            if not (
                f.dtype is DataType.FLOAT32 and f.word_order == "big" and f.byte_order == "big"
                and f.scale_factor_at is None and exponent is not None and offset % 4 == 0
                and self.requests[index].count % 2 == 0
            ):
                break
            flat.append((
                f.measurement.value, f.measurement, starts[index] + offset // 4, 10.0 ** abs(exponent), exponent < 0,
                f.scale if f.measurement in wanted else None,
            ))
        else:
            self._flat = struct.Struct(f">{total}f")
            self._flat_fields = tuple(flat)

    def _locate(self, function_code: int, address: int, count: int) -> tuple[int, int]:
        for i, r in enumerate(self.requests):
            if r.function_code == function_code and r.address <= address and address + count <= r.end:
                return i, 2 * (address - r.address)
        raise DecodeError(f"register {address} (function {function_code}) is not in the read plan")

    def decode(self, payloads: Sequence[bytes]) -> tuple[dict[str, float], dict[Measurement, Decimal]]:
        if len(payloads) != len(self.requests):
            raise DecodeError(f"{len(payloads)} answers for {len(self.requests)} requests")
        found: dict[str, float] = {}
        markers = self._markers
        if self._flat is not None:
            return self._decode_flat(payloads)
        unpack = _FLOAT32.unpack_from
        for name, index, offset, factor, divide in self._fast:
            (raw,) = unpack(payloads[index], offset)
            if raw != raw and markers:
                continue  # NaN: "not implemented" in SunSpec
            found[name] = raw / factor if divide else raw * factor
        exact: dict[Measurement, Decimal] = {}
        for f, index, offset, sf_at, exponent, want_exact in self._slow:
            registers = list(struct.unpack_from(f">{f.dtype.count}H", payloads[index], offset))
            raw = decode_raw(registers, f.dtype, f.word_order, f.byte_order)
            if self._markers and _is_not_implemented(registers, f, raw):
                continue
            sf = 0
            if sf_at is not None:
                (sf_raw,) = _INT16.unpack_from(payloads[sf_at[0]], sf_at[1])
                if sf_raw == -0x8000 or not -10 <= sf_raw <= 10:
                    continue  # a scale factor outside the spec's -10..10 is as good as not implemented
                sf = sf_raw
            if want_exact or exponent is None:
                value = Decimal(raw)
                if value.is_finite():
                    value = _EXACT.multiply(value, f.scale).scaleb(sf, _EXACT)
                elif value.is_infinite() and f.scale < 0:
                    value = -value
                if want_exact:
                    exact[f.measurement] = value
                found[f.measurement.value] = float(value)
            else:
                e = exponent + sf
                number = float(raw)
                found[f.measurement.value] = number * 10.0**e if e >= 0 else number / 10.0 ** (-e)
        if self._slow and self._fast:
            found = {name: found[name] for name in self._order if name in found}
        return found, exact

    def _decode_flat(self, payloads: Sequence[bytes]) -> tuple[dict[str, float], dict[Measurement, Decimal]]:
        assert self._flat is not None
        floats = self._flat.unpack(b"".join(payloads))
        markers = self._markers
        found: dict[str, float] = {}
        exact: dict[Measurement, Decimal] = {}
        for name, measurement, position, factor, divide, scale in self._flat_fields:
            raw = floats[position]
            if raw != raw and markers:
                continue  # NaN: "not implemented" in SunSpec
            if scale is None:
                found[name] = raw / factor if divide else raw * factor
                continue
            value = Decimal(raw)  # exact: a float32 widened to a double
            if value.is_finite():
                value = _EXACT.multiply(value, scale)
            exact[measurement] = value
            found[name] = float(value)
        return found, exact
