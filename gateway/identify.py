"""Which meter is this? Asked of the device itself, never guessed from which registers happen to answer.

* Eastron meters report themselves in holding registers (function 03) 0xFC00-0xFC03: the serial number
  (uint32, 0xFC00-0xFC01), the meter code (uint16, 0xFC02) and the firmware version (uint16, 0xFC03).
  Meter codes (Eastron's SDM630MCT manual documents the register; the codes per model are the ones
  Victron's dbus-modbus-client drivers match on): 0x0020 SDM120-Modbus, 0x0070 SDM630-Modbus,
  0x0079 SDM630-MCT, 0x0088 SDM630-MCT 40 mA, 0x002B SDM230, 0x0084 SDM72D-M, 0x0089 SDM72D-M v2.
* SunSpec devices carry the "SunS" marker and the common model (model 1): manufacturer, model, version
  and serial number as strings.
* Anything else that answers is an "unknown Modbus device": reported as such, never labelled a meter.

Identification costs one request for an Eastron meter (one more walk for SunSpec, which discovery does
anyway) and is done once per contact: at the first poll and after a meter was offline.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from gateway.errors import MeterError, MeterExceptionResponse
from gateway.models.sunspec import METER_MODELS
from gateway.register_map import READ_HOLDING, READ_INPUT, RegisterRange
from gateway.sunspec_discovery import ModelBlock, ReadFn, locate, walk

__all__ = ["EASTRON_CODES", "EASTRON_IDENTITY", "Identity", "compare", "identify", "sunspec_identity"]

EASTRON_IDENTITY = RegisterRange(READ_HOLDING, 0xFC00, 4)

# meter code -> (our model key or None when we have no register table for it, the product name)
EASTRON_CODES: dict[int, tuple[str | None, str]] = {
    0x0020: ("sdm120", "Eastron SDM120-Modbus"),
    0x0070: ("sdm630", "Eastron SDM630-Modbus"),
    0x0079: ("sdm630", "Eastron SDM630-MCT"),
    0x0088: ("sdm630", "Eastron SDM630-MCT 40 mA"),
    0x002B: (None, "Eastron SDM230-Modbus"),
    0x0084: (None, "Eastron SDM72D-M"),
    0x0089: (None, "Eastron SDM72D-M v2"),
}

_METER_CODE = RegisterRange(READ_HOLDING, 0xFC02, 1)
_COMMON_MODEL = 1
_VOLTAGE_PROBE = RegisterRange(READ_INPUT, 0x0000, 2)


@dataclass(frozen=True, slots=True)
class Identity:
    """What a device says it is. ``model`` is our model key when the device positively reports one we
    have a table for; ``kind`` is how it described itself (``unknown``: it answers, but says nothing)."""

    kind: Literal["eastron", "sunspec", "unknown"]
    model: str | None
    name: str
    serial: str | None = None
    detail: str = ""
    manufacturer: str | None = None
    product: str | None = None

    def describe(self) -> str:
        text = self.name
        if self.serial:
            text += f", serial {self.serial}"
        if self.detail:
            text += f" ({self.detail})"
        return text


def _text(registers: list[int]) -> str:
    return struct.pack(f">{len(registers)}H", *registers).split(b"\0", 1)[0].decode("utf-8", "replace").strip()


async def _eastron(read: ReadFn) -> Identity | None:
    """The Eastron identity block, or None when the device has none (raises MeterTimeout if silent)."""
    serial_hi: int | None
    serial_lo: int | None
    firmware: int | None
    try:
        serial_hi, serial_lo, code, firmware = await read(EASTRON_IDENTITY)
    except MeterExceptionResponse:
        # Some firmware answers the meter code register only on its own.
        try:
            (code,) = await read(_METER_CODE)
        except MeterExceptionResponse:
            return None
        serial_hi = serial_lo = firmware = None
    if code in (0x0000, 0xFFFF):
        return None  # readable, but not a meter code: some devices answer every address with zeros
    serial = None if serial_hi is None or serial_lo is None else str((serial_hi << 16) | serial_lo)
    model, name = EASTRON_CODES.get(code, (None, f"Eastron meter with unknown meter code 0x{code:04X}"))
    detail = f"meter code 0x{code:04X}" + ("" if firmware is None else f", firmware 0x{firmware:04X}")
    if model is None and code in EASTRON_CODES:
        detail += "; no register table for this model here"
    return Identity("eastron", model, name, serial, detail, "Eastron", name.removeprefix("Eastron "))


async def _sunspec(read: ReadFn, *, bus: str, unit: int) -> Identity | None:
    base = await locate(read)
    if base is None:
        return None
    try:
        models = await walk(read, base, bus=bus, unit=unit)
    except MeterError as exc:
        return Identity("sunspec", None, "SunSpec device", detail=f"marker at {base}, but {exc.detail}")
    return await sunspec_identity(read, models)


async def sunspec_identity(read: ReadFn, models: Sequence[ModelBlock]) -> Identity:
    """A SunSpec device's identity from its model chain (as discovery found it): the common model's
    manufacturer, model and serial number (one request)."""
    common = next((m for m in models if m.model_id == _COMMON_MODEL and m.length >= 64), None)
    name, serial, maker, product = "SunSpec device", None, None, None
    if common is not None:
        maker, product, serial = await _common_model(read, common)
        name = " ".join(p for p in ("SunSpec", maker, product) if p)
    ids = ", ".join(str(m.model_id) for m in models)
    supported = any(m.model_id in METER_MODELS for m in models)
    detail = f"models {ids}" + ("" if supported else "; no supported meter model (201-204, 211-214)")
    return Identity("sunspec", "sunspec" if supported else None, name, serial, detail, maker, product)


async def _common_model(read: ReadFn, block: ModelBlock) -> tuple[str | None, str | None, str | None]:
    """(manufacturer, model, serial number) from the common model."""
    # Mn (16 registers), Md (16), Opt (8), Vr (8), SN (16) follow the id and length registers.
    registers = await read(RegisterRange(READ_HOLDING, block.address + 2, 64))
    manufacturer, model, serial = _text(registers[0:16]), _text(registers[16:32]), _text(registers[48:64])
    return manufacturer or None, model or None, serial or None


async def _hint(read: ReadFn) -> str:
    """A clue for the technician when a device reports nothing about itself."""
    try:
        high, low = await read(_VOLTAGE_PROBE)
    except MeterError:
        return "it reports no meter code (holding 0xFC02) and no SunSpec marker"
    (value,) = struct.unpack(">f", struct.pack(">HH", high, low))
    if 80.0 <= value <= 300.0:
        return (f"it reports no meter code and no SunSpec marker; input register 0 reads {value:.1f} as a "
                "float32 voltage, like an Eastron meter without a meter-code register")
    return "it reports no meter code (holding 0xFC02) and no SunSpec marker"


async def identify(read: ReadFn, *, bus: str, unit: int, sunspec_first: bool = False) -> Identity:
    """Ask the device at ``unit`` what it is. ``read`` performs one request (raising MeterError).

    A timeout on the first request is raised (nobody there, or the meter is not answering: the caller
    decides which); exception answers are answers. ``sunspec_first`` tries the SunSpec marker first
    (for meters configured as SunSpec: discovery reads it anyway)."""
    order = (_sunspec, _eastron) if sunspec_first else (_eastron, _sunspec)
    for probe in order:
        if probe is _sunspec:
            found = await _sunspec(read, bus=bus, unit=unit)
        else:
            found = await _eastron(read)
        if found is not None:
            return found
    return Identity("unknown", None, "unknown Modbus device", detail=await _hint(read))


def compare(configured: str, identity: Identity) -> str | None:
    """None when ``identity`` does not contradict the configured model key, else why it does. A device
    that says nothing about itself (``unknown``) cannot contradict: it is unconfirmed, not wrong."""
    if identity.kind == "unknown" or identity.model == configured:
        return None
    reports = identity.describe()
    if identity.model is None:
        return f"configured as {configured}, but the device reports {reports}"
    return f"configured as {configured}, but the device reports {reports}, which is model {identity.model}"
