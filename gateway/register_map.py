"""The shape of a meter's register table: data, not code.

A :class:`RegisterMap` lists, for each :class:`~gateway.measurements.Measurement`, where it lives
(function code, address), how it is encoded (data type, word and byte order) and how to scale it into
the vocabulary's unit.  One module per meter family in :mod:`gateway.models` fills in these tables;
:mod:`gateway.blocks` plans the reads and :mod:`gateway.decode` turns registers back into values.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Literal

from gateway.measurements import Measurement

__all__ = [
    "READ_HOLDING",
    "READ_INPUT",
    "ByteOrder",
    "DataType",
    "Field",
    "MeterModel",
    "Probe",
    "RegisterMap",
    "RegisterMapError",
    "RegisterRange",
    "WordOrder",
]

READ_HOLDING = 3
READ_INPUT = 4

WordOrder = Literal["big", "little"]
ByteOrder = Literal["big", "little"]


class RegisterMapError(ValueError):
    """A register table that contradicts itself (duplicate measurement, overlapping registers...)."""


class DataType(enum.Enum):
    """How a value is laid out in registers. ``.count`` is the number of 16-bit registers."""

    count: int

    def __new__(cls, name: str, count: int) -> DataType:
        member = object.__new__(cls)
        member._value_ = name
        member.count = count
        return member

    UINT16 = ("uint16", 1)
    INT16 = ("int16", 1)
    UINT32 = ("uint32", 2)
    INT32 = ("int32", 2)
    FLOAT32 = ("float32", 2)
    ACC32 = ("acc32", 2)  # SunSpec accumulator: uint32, 0 means "not accumulated"
    SUNSSF = ("sunssf", 1)  # SunSpec scale factor: int16 power of ten, 0x8000 means "not implemented"


@dataclass(frozen=True, slots=True)
class RegisterRange:
    """``count`` registers from ``address`` read with ``function_code`` (3 holding, 4 input)."""

    function_code: int
    address: int
    count: int

    @property
    def end(self) -> int:
        """One past the last register."""
        return self.address + self.count


@dataclass(frozen=True, slots=True)
class Field:
    """One measurement in a table. ``value = raw * scale * 10**sf`` where ``sf`` is the SunSpec scale
    factor read from ``scale_factor_at`` (absent for meters that do not use scale factors)."""

    measurement: Measurement
    address: int
    dtype: DataType = DataType.FLOAT32
    function_code: int = READ_INPUT
    word_order: WordOrder = "big"
    byte_order: ByteOrder = "big"
    scale: Decimal = Decimal(1)
    scale_factor_at: int | None = None

    @property
    def registers(self) -> RegisterRange:
        return RegisterRange(self.function_code, self.address, self.dtype.count)

    @property
    def scale_factor_register(self) -> RegisterRange | None:
        if self.scale_factor_at is None:
            return None
        return RegisterRange(self.function_code, self.scale_factor_at, DataType.SUNSSF.count)


@dataclass(frozen=True)
class RegisterMap:
    """A meter's measurements.  ``relative`` tables hold offsets from a SunSpec model's id register and
    must be :meth:`resolve`-d to absolute addresses after discovery.  ``not_implemented_markers`` turns
    SunSpec's reserved values (int16 0x8000, acc32 0, NaN...) into absent measurements instead of data.
    ``max_gap`` is how many unused registers the planner may read to save a request (meters that
    answer unmapped registers with an exception need 0); ``max_registers`` is the most one request may
    ask for (Modbus allows 125, some meters fewer)."""

    name: str
    fields: tuple[Field, ...]
    not_implemented_markers: bool = False
    relative: bool = False
    max_gap: int = 64
    max_registers: int = 125
    _by_measurement: dict[Measurement, Field] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 1 <= self.max_registers <= 125:
            raise RegisterMapError(f"{self.name}: max_registers must be 1..125")
        if self.max_gap < 0:
            raise RegisterMapError(f"{self.name}: max_gap must not be negative")
        by_measurement: dict[Measurement, Field] = {}
        value_registers: dict[tuple[int, int], Measurement] = {}
        for f in self.fields:
            if f.measurement in by_measurement:
                raise RegisterMapError(f"{self.name}: {f.measurement.value} is listed twice")
            by_measurement[f.measurement] = f
            if f.dtype is DataType.SUNSSF:
                raise RegisterMapError(f"{self.name}: {f.measurement.value} cannot be a scale factor")
            for reg in range(f.address, f.address + f.dtype.count):
                other = value_registers.get((f.function_code, reg))
                if other is not None:
                    raise RegisterMapError(
                        f"{self.name}: {f.measurement.value} and {other.value} overlap at register {reg}"
                    )
                value_registers[(f.function_code, reg)] = f.measurement
        for f in self.fields:
            sf = f.scale_factor_register
            if sf is not None and (sf.function_code, sf.address) in value_registers:
                raise RegisterMapError(
                    f"{self.name}: scale factor of {f.measurement.value} at {sf.address} "
                    f"overlaps {value_registers[(sf.function_code, sf.address)].value}"
                )
        object.__setattr__(self, "_by_measurement", by_measurement)

    def __getitem__(self, measurement: Measurement) -> Field:
        return self._by_measurement[measurement]

    def __contains__(self, measurement: object) -> bool:
        return measurement in self._by_measurement

    @property
    def measurements(self) -> tuple[Measurement, ...]:
        return tuple(f.measurement for f in self.fields)

    def reads(self) -> list[RegisterRange]:
        """Every register range the table needs, scale factors included (unsorted, may repeat)."""
        ranges = [f.registers for f in self.fields]
        ranges += [sf for f in self.fields if (sf := f.scale_factor_register) is not None]
        return ranges

    def resolve(self, base: int) -> RegisterMap:
        """The absolute table for a SunSpec model whose id register is at ``base``."""
        if not self.relative:
            raise RegisterMapError(f"{self.name}: addresses are already absolute")
        shifted = tuple(
            replace(
                f,
                address=base + f.address,
                scale_factor_at=None if f.scale_factor_at is None else base + f.scale_factor_at,
            )
            for f in self.fields
        )
        return replace(self, name=f"{self.name}@{base}", fields=shifted, relative=False)

    def select(self, measurements: Iterable[Measurement]) -> RegisterMap:
        """The same table restricted to ``measurements`` (to spend less bus time per cycle)."""
        wanted = set(measurements)
        missing = wanted - set(self._by_measurement)
        if missing:
            names = ", ".join(sorted(m.value for m in missing))
            raise RegisterMapError(f"{self.name}: does not provide {names}")
        return replace(self, fields=tuple(f for f in self.fields if f.measurement in wanted))


@dataclass(frozen=True, slots=True)
class Probe:
    """A cheap request that tells whether a unit is this kind of meter.  When ``expect`` is set the
    registers must equal one of its entries (SunSpec's "SunS" marker, the SDM630's system type);
    otherwise any normal answer will do.  A scanner tries the probes with ``expect`` first."""

    registers: RegisterRange
    expect: tuple[tuple[int, ...], ...] | None = None

    def matches(self, registers: list[int]) -> bool:
        return self.expect is None or tuple(registers) in self.expect


@dataclass(frozen=True)
class MeterModel:
    """A registry entry: a fixed ``table``, or (SunSpec) ``sunspec_tables`` by model id, picked after
    discovery.  ``rated_power_w`` bounds plausible power and energy increments."""

    key: str
    description: str
    datasheet: str
    probe: Probe
    rated_power_w: int
    table: RegisterMap | None = None
    sunspec_tables: Mapping[int, RegisterMap] | None = None

    def __post_init__(self) -> None:
        if (self.table is None) == (self.sunspec_tables is None):
            raise RegisterMapError(f"{self.key}: give exactly one of table or sunspec_tables")
        if self.table is not None and self.table.relative:
            raise RegisterMapError(f"{self.key}: a fixed table must use absolute addresses")
        for model_id, table in (self.sunspec_tables or {}).items():
            if not table.relative:
                raise RegisterMapError(f"{self.key}: SunSpec model {model_id} table must be relative")

    @property
    def needs_discovery(self) -> bool:
        return self.sunspec_tables is not None
