"""Find meters on a bus: which unit ids answer, and as what model.

Each unit costs one timeout when nobody is there: the first probe tells presence, and only units that
answered get the further probes.  Probes that expect particular values (SunSpec's "SunS" marker, the
SDM630's system-type register) are tried before the ones that accept any answer, so the most specific
model wins.  A SunSpec hit is followed by discovery to report which meter model it carries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gateway.decode import decode_raw
from gateway.errors import BusUnavailable, MeterError, MeterExceptionResponse, MeterTimeout
from gateway.models import MODELS
from gateway.register_map import DataType, MeterModel, RegisterRange
from gateway.sunspec_discovery import discover
from gateway.transport import Bus, TcpBus

__all__ = ["ScanHit", "identify", "parse_units", "scan"]


@dataclass(frozen=True)
class ScanHit:
    unit: int
    model: str | None  # None: something answers, but no known model's probe matched
    detail: str


def parse_units(text: str) -> list[int]:
    """``"1-10,17,20-22"`` -> unit ids, each 1..247, in order, without repeats."""
    units: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo_text, _, hi_text = part.partition("-")
        try:
            lo = int(lo_text)
            hi = int(hi_text) if hi_text else lo
        except ValueError:
            raise ValueError(f"{part!r} is not a unit id or a range like 1-247") from None
        if not 1 <= lo <= hi <= 247:
            raise ValueError(f"{part!r}: unit ids run from 1 to 247")
        units += [u for u in range(lo, hi + 1) if u not in units]
    if not units:
        raise ValueError("no unit ids given")
    return units


def _probe_order(models: Mapping[str, MeterModel]) -> list[MeterModel]:
    return sorted(models.values(), key=lambda m: (m.probe.expect is None, m.key))


async def identify(
    bus: Bus, unit: int, *, response_timeout: float, models: Mapping[str, MeterModel] = MODELS
) -> ScanHit | None:
    """None when the unit does not answer at all; otherwise what it looks like."""
    answered = False
    for model in _probe_order(models):
        try:
            registers = await bus.read(unit, model.probe.registers, response_timeout=response_timeout)
        except MeterTimeout:
            if not answered:
                return None  # nobody there: do not spend more timeouts on this unit
            continue
        except MeterExceptionResponse:
            answered = True
            continue
        answered = True
        if not model.probe.matches(registers):
            continue
        return ScanHit(unit, model.key, await _describe(bus, unit, model, registers, response_timeout))
    return ScanHit(unit, None, "answers, but matches no known model") if answered else None


async def _describe(
    bus: Bus, unit: int, model: MeterModel, registers: list[int], response_timeout: float
) -> str:
    if model.needs_discovery:

        async def read(request: RegisterRange) -> list[int]:
            return await bus.read(unit, request, response_timeout=response_timeout)

        try:
            device = await discover(read, bus=bus.name, unit=unit)
        except MeterError as exc:
            return f"SunSpec marker found, but {exc.detail}"
        return (
            f"SunSpec base {device.base}, models {', '.join(map(str, device.model_ids))}; "
            f"meter model {device.meter.model_id} at {device.meter.address}"
        )
    if model.probe.registers.count == 2 and model.probe.expect is None:
        value = decode_raw(registers, DataType.FLOAT32)
        return f"{model.description}; register {model.probe.registers.address} reads {value:.6g}"
    return model.description


async def scan(
    bus: Bus, units: Iterable[int], *, response_timeout: float, concurrency: int = 1
) -> list[ScanHit]:
    """Probe ``units`` on ``bus``.  On TCP up to ``concurrency`` units are probed at once (one
    connection each, closed after); on a serial line the bus serialises them anyway.  Raises
    :class:`BusUnavailable` when the port or host cannot be used at all."""
    semaphore = asyncio.Semaphore(max(1, concurrency if isinstance(bus, TcpBus) else 1))

    async def one(unit: int) -> ScanHit | None:
        async with semaphore:
            try:
                return await identify(bus, unit, response_timeout=response_timeout)
            except BusUnavailable:
                raise  # the port or host itself is unusable: no point probing further units
            except MeterError:
                return ScanHit(unit, None, "answers, but its replies are unusable")
            finally:
                if isinstance(bus, TcpBus):
                    await bus.release(unit)

    try:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(one(u)) for u in units]
    except ExceptionGroup as group:
        unavailable = group.subgroup(BusUnavailable)
        if unavailable is not None:
            first = unavailable.exceptions[0]
            raise first if isinstance(first, BusUnavailable) else unavailable from None
        raise
    return [hit for t in tasks if (hit := t.result()) is not None]
