"""Find meters on a bus: which unit ids answer, and what each device says it is.

Each unit costs one timeout when nobody is there: the first request (the Eastron identity block,
:mod:`gateway.identify`) tells presence, and only units that answered are asked further. A device is
named by what it reports about itself -- an Eastron meter code, a SunSpec common model -- or reported as
an "unknown Modbus device"; it is never labelled a meter because some register happened to answer.

A Modbus TCP server that ignores the unit id answers every unit id alike; :func:`same_device` finds the
units that report one serial number, and :func:`answers_everything` says when every probed unit answered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gateway.errors import BusUnavailable, MeterError, MeterExceptionResponse, MeterTimeout
from gateway.identify import Identity, identify
from gateway.register_map import RegisterRange
from gateway.sunspec_discovery import discover
from gateway.transport import Bus

__all__ = ["ScanHit", "answers_everything", "format_units", "identify_unit", "parse_units", "same_device", "scan"]


@dataclass(frozen=True)
class ScanHit:
    unit: int
    model: str | None  # our model key when the device reports one we can read, else None
    detail: str
    identity: Identity | None = None


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


def format_units(units: Iterable[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``"1-3, 7"``."""
    out: list[str] = []
    ordered = sorted(set(units))
    start = prev = None
    for u in [*ordered, None]:
        if start is not None and (u is None or u != prev + 1):  # type: ignore[operator]
            out.append(str(start) if start == prev else f"{start}-{prev}")
            start = None
        if u is not None and start is None:
            start = u
        prev = u
    return ", ".join(out)


async def identify_unit(bus: Bus, unit: int, *, response_timeout: float) -> ScanHit | None:
    """None when the unit does not answer at all; otherwise what the device says it is."""
    answered = False

    async def read(request: RegisterRange) -> list[int]:
        nonlocal answered
        try:
            registers = await bus.read(unit, request, response_timeout=response_timeout)
        except MeterExceptionResponse:
            answered = True
            raise
        answered = True
        return registers

    try:
        found = await identify(read, bus=bus.name, unit=unit)
    except BusUnavailable:
        raise
    except MeterTimeout:
        return ScanHit(unit, None, "answers at first, then stops answering") if answered else None
    except MeterError as exc:
        return ScanHit(unit, None, f"answers, but its replies are unusable: {exc.detail}")
    detail = found.describe()
    if found.kind == "sunspec" and found.model is not None:
        try:
            device = await discover(read, bus=bus.name, unit=unit)
            detail += f"; meter model {device.meter.model_id} at {device.meter.address}"
        except MeterError as exc:
            detail += f"; {exc.detail}"
    return ScanHit(unit, found.model, detail, found)


async def scan(
    bus: Bus, units: Iterable[int], *, response_timeout: float, concurrency: int = 1
) -> list[ScanHit]:
    """Probe ``units`` on ``bus``, ``concurrency`` at a time (on TCP the requests share the bus's one
    connection; on a serial line the bus serialises them anyway). Raises :class:`BusUnavailable` when
    the port or host cannot be used at all."""
    semaphore = asyncio.Semaphore(max(1, concurrency))

    async def one(unit: int) -> ScanHit | None:
        async with semaphore:
            return await identify_unit(bus, unit, response_timeout=response_timeout)

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


def same_device(hits: Sequence[ScanHit]) -> dict[str, list[int]]:
    """Serial number -> the units reporting it, for serials reported by more than one unit: one device
    answering several unit ids (it ignores the unit id)."""
    by_serial: dict[str, list[int]] = {}
    for hit in hits:
        if hit.identity is not None and hit.identity.serial:
            by_serial.setdefault(hit.identity.serial, []).append(hit.unit)
    return {serial: units for serial, units in by_serial.items() if len(units) > 1}


def answers_everything(hits: Sequence[ScanHit], units: Sequence[int]) -> bool:
    """Every probed unit id answered (and there were several): a server that ignores the unit id."""
    return len(units) >= 3 and len(hits) == len(units)
