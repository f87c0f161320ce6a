"""Eastron SDM120 (single-phase, Modbus RTU): input registers (function 04), IEEE-754 float32 in two
registers, high word first.  Energy registers count kWh; the table scales them to Wh.

Full table: 2 requests (0x0000-0x004F and 0x0156-0x0159).
"""

from __future__ import annotations

from decimal import Decimal
from functools import partial

from gateway.measurements import Measurement as M
from gateway.register_map import READ_INPUT, DataType, Field, MeterModel, Probe, RegisterMap, RegisterRange

DATASHEET = "https://www.eastroneurope.com/images/uploads/products/protocol/SDM120-MODBUS_Protocol.pdf"

_f = partial(Field, dtype=DataType.FLOAT32, function_code=READ_INPUT, word_order="big")
_KWH = Decimal(1000)

TABLE = RegisterMap(
    name="sdm120",
    max_registers=80,
    max_gap=160,
    fields=(
        _f(M.VOLTAGE_L1, 0x0000),
        _f(M.CURRENT_L1, 0x0006),
        # Single phase: the phase-1 power is the total (+ import / - export).
        _f(M.POWER_TOTAL, 0x000C),
        _f(M.APPARENT_POWER_TOTAL, 0x0012),
        _f(M.REACTIVE_POWER_TOTAL, 0x0018),
        _f(M.POWER_FACTOR, 0x001E),
        _f(M.FREQUENCY, 0x0046),
        _f(M.IMPORT_ENERGY, 0x0048, scale=_KWH),
        _f(M.EXPORT_ENERGY, 0x004A, scale=_KWH),
        _f(M.IMPORT_REACTIVE_ENERGY, 0x004C, scale=_KWH),
        _f(M.EXPORT_REACTIVE_ENERGY, 0x004E, scale=_KWH),
        _f(M.TOTAL_ENERGY, 0x0156, scale=_KWH),
        _f(M.TOTAL_REACTIVE_ENERGY, 0x0158, scale=_KWH),
    ),
)

MODEL = MeterModel(
    key="sdm120",
    description="Eastron SDM120 single-phase meter (float32 input registers)",
    datasheet=DATASHEET,
    # Voltage L1: any Eastron meter answers it, so scans try it after the more specific probes.
    probe=Probe(RegisterRange(READ_INPUT, 0x0000, 2)),
    rated_power_w=45 * 277,  # 45 A maximum current
    table=TABLE,
)
