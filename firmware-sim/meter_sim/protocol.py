"""Modbus application layer shared by the TCP and RTU servers: a request PDU addressed to a unit id
becomes a reply PDU, an exception PDU, or silence.

Only the two read functions a meter needs are implemented (03 read holding registers, 04 read input
registers); everything else is answered with exception 01, as a meter does. The PDUs are parsed here
rather than with pymodbus' request classes because those raise on an out-of-range count instead of
letting the server answer exception 03, and because a fault may have to replace the answer anyway.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from meter_sim.errors import ConfigError, ModbusExceptionReply
from meter_sim.meter import SimMeter
from meter_sim.registers import ILLEGAL_DATA_VALUE, ILLEGAL_FUNCTION, SERVER_DEVICE_FAILURE

log = logging.getLogger(__name__)

READ_HOLDING_REGISTERS = 0x03
READ_INPUT_REGISTERS = 0x04


@dataclass(frozen=True)
class Reply:
    """What to send back: the response PDU (function code first), after ``delay_s``, and whether the
    transport must damage it on the way."""

    pdu: bytes
    delay_s: float = 0.0
    corrupt: bool = False
    unsolicited: bool = False
    """Follow the answer with a frame nobody asked for."""

    @property
    def is_exception(self) -> bool:
        return bool(self.pdu) and self.pdu[0] & 0x80 != 0


def exception_pdu(function_code: int, code: int) -> bytes:
    return bytes(((function_code | 0x80) & 0xFF, code & 0xFF))


def index_meters(meters: Iterable[SimMeter]) -> dict[int, SimMeter]:
    """Meters by unit id; two meters on one bus or server must not share an id."""
    by_unit: dict[int, SimMeter] = {}
    for m in meters:
        if m.unit in by_unit:
            raise ConfigError(f"unit id {m.unit} used twice ({by_unit[m.unit].model} and {m.model})")
        by_unit[m.unit] = m
    if not by_unit:
        raise ConfigError("no meters to serve")
    return by_unit


class Dispatcher:
    """Routes request PDUs to the meter with the addressed unit id. With ``answer_any_unit`` the first
    meter also answers for every unit id nobody has, as some Modbus TCP devices and misconfigured
    converters do (they ignore the unit id)."""

    def __init__(self, meters: Iterable[SimMeter] | Mapping[int, SimMeter], where: str,
                 answer_any_unit: bool = False) -> None:
        self.meters = index_meters(meters.values() if isinstance(meters, Mapping) else meters)
        self.where = where
        self.answer_any_unit = answer_any_unit
        self._first = next(iter(self.meters.values()))

    def handle(self, unit: int, pdu: bytes) -> Reply | None:
        """The reply for ``pdu`` sent to ``unit``, or None when nothing must answer (unknown unit, a
        silent meter, broadcast)."""
        meter = self.meters.get(unit)
        if meter is None and self.answer_any_unit and unit != 0:
            meter = self._first
        if meter is None or not pdu:
            log.debug("%s: request for unit %d: no such meter, staying silent", self.where, unit)
            return None
        faults = meter.faults
        if faults.no_response:
            log.debug("%s: unit %d has the no-response fault, staying silent", self.where, unit)
            return None
        function_code = pdu[0]
        if faults.exception_code is not None:
            out = exception_pdu(function_code, faults.exception_code)
        else:
            out = self._answer(meter, function_code, pdu[1:])
        return Reply(out, delay_s=faults.delay_s, corrupt=faults.corrupt, unsolicited=faults.unsolicited)

    def _answer(self, meter: SimMeter, function_code: int, data: bytes) -> bytes:
        if function_code not in (READ_HOLDING_REGISTERS, READ_INPUT_REGISTERS):
            log.debug("%s: unit %d: function code %d not supported", self.where, meter.unit, function_code)
            return exception_pdu(function_code, ILLEGAL_FUNCTION)
        if len(data) != 4:
            return exception_pdu(function_code, ILLEGAL_DATA_VALUE)
        address, count = struct.unpack(">HH", data)
        try:
            words = meter.read_registers(function_code, address, count)
        except ModbusExceptionReply as exc:
            log.debug("%s: unit %d (%s): %s", self.where, meter.unit, meter.model, exc)
            return exception_pdu(function_code, exc.code)
        except Exception:
            # A simulator bug must not kill the server; the client sees what a failing meter sends.
            log.exception("%s: unit %d (%s) failed reading fc %02d at %#06x x%d",
                          self.where, meter.unit, meter.model, function_code, address, count)
            return exception_pdu(function_code, SERVER_DEVICE_FAILURE)
        log.debug("%s: unit %d (%s) fc %02d %#06x x%d", self.where, meter.unit, meter.model,
                  function_code, address, count)
        return bytes((function_code, 2 * len(words))) + struct.pack(f">{len(words)}H", *words)
