"""Find a SunSpec meter's registers: marker, then a walk over the model list.

A SunSpec device puts "SunS" (0x5375 0x6E53) at one of a few base addresses (40000, else 0, else
50000), then a chain of models ``[id, length, data x length]`` starting at base + 2, ended by id 0xFFFF.
We read only the two header registers of each model (one small request each, done once per
connection), pick the first supported meter model and resolve its relative table to absolute
addresses.  An exception answer at a base means "not here"; a timeout means the meter is silent and is
passed on, so a dead meter is not mistaken for a non-SunSpec one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from gateway.errors import DiscoveryError, MeterExceptionResponse
from gateway.models.sunspec import BASE_ADDRESSES, END_MODEL_ID, METER_MODELS, SUNS_MARKER
from gateway.register_map import READ_HOLDING, RegisterMap, RegisterRange

__all__ = ["ModelBlock", "ReadFn", "SunSpecDevice", "discover", "locate", "walk"]

ReadFn = Callable[[RegisterRange], Awaitable[list[int]]]

_MAX_MODELS = 64  # a real device has a handful; a loop in the chain must not walk forever


@dataclass(frozen=True, slots=True)
class ModelBlock:
    """One model in the chain: ``address`` is its id register; data follows at ``address + 2``."""

    model_id: int
    address: int
    length: int


@dataclass(frozen=True)
class SunSpecDevice:
    base: int
    models: tuple[ModelBlock, ...]
    meter: ModelBlock
    table: RegisterMap  # absolute addresses

    @property
    def model_ids(self) -> tuple[int, ...]:
        return tuple(m.model_id for m in self.models)


def _table_extent(table: RegisterMap) -> int:
    """Registers after the id register that the table touches (must fit in 2 + the model length)."""
    ends = [r.end for r in table.reads()]
    return max(ends)


async def locate(read: ReadFn, *, bases: Sequence[int] = BASE_ADDRESSES) -> int | None:
    """The base address holding the "SunS" marker, or None. An exception answer at a base means "not
    here"; a timeout is passed on (a silent device is not a non-SunSpec one)."""
    for candidate in bases:
        try:
            marker = await read(RegisterRange(READ_HOLDING, candidate, 2))
        except MeterExceptionResponse:
            continue  # nothing mapped here: try the next customary base
        if tuple(marker) == SUNS_MARKER:
            return candidate
    return None


async def walk(read: ReadFn, base: int, *, bus: str, unit: int) -> list[ModelBlock]:
    """The chain of models after the marker at ``base`` (headers only: two registers per model)."""
    models: list[ModelBlock] = []
    address = base + 2
    while True:
        if len(models) >= _MAX_MODELS or address + 2 > 0x10000:
            raise DiscoveryError("model chain does not end with 0xFFFF", bus=bus, unit=unit, address=address)
        try:
            model_id, length = await read(RegisterRange(READ_HOLDING, address, 2))
        except MeterExceptionResponse:
            if not models:
                raise
            break  # some devices end the chain with unreadable registers instead of 0xFFFF
        if model_id == END_MODEL_ID:
            break
        models.append(ModelBlock(model_id, address, length))
        address += 2 + length
    return models


async def discover(
    read: ReadFn,
    *,
    bus: str,
    unit: int,
    bases: Sequence[int] = BASE_ADDRESSES,
    tables: Mapping[int, RegisterMap] = METER_MODELS,
) -> SunSpecDevice:
    """Locate the marker, walk the models, resolve the preferred meter table.  ``read`` performs one
    holding-register request (the poller passes its retrying reader)."""
    base = await locate(read, bases=bases)
    if base is None:
        raise DiscoveryError(
            f"no SunSpec marker at {', '.join(map(str, bases))}", bus=bus, unit=unit
        )
    models = await walk(read, base, bus=bus, unit=unit)

    for model_id, table in tables.items():
        block = next((m for m in models if m.model_id == model_id), None)
        if block is None:
            continue
        if _table_extent(table) > 2 + block.length:
            raise DiscoveryError(
                f"model {model_id} has length {block.length}, too short for its table",
                bus=bus,
                unit=unit,
                address=block.address,
            )
        return SunSpecDevice(base, tuple(models), block, table.resolve(block.address))
    found = ", ".join(str(m.model_id) for m in models) or "none"
    raise DiscoveryError(
        f"no supported meter model (have {found}; want one of {', '.join(map(str, tables))})",
        bus=bus,
        unit=unit,
        address=base,
    )
