"""Eastron SDM630 (three-phase, Modbus RTU): input registers (function 04), every value an IEEE-754
float32 in two registers, high word first.  Energy registers count kWh; the table scales them to Wh.

The meter answers at most 40 values (80 registers) per request and an exception beyond that, so the
planner is told ``max_registers=80``; gaps between mapped registers read as zero, so they may be
bridged.  Full table: 3 requests (0x0000-0x004F, 0x00EA-0x00F9, 0x0156-0x016B).
"""

from __future__ import annotations

from decimal import Decimal
from functools import partial

from gateway.measurements import Measurement as M
from gateway.register_map import (
    READ_HOLDING,
    READ_INPUT,
    DataType,
    Field,
    MeterModel,
    Probe,
    RegisterMap,
    RegisterRange,
)

DATASHEET = "https://www.eastroneurope.com/images/uploads/products/protocol/SDM630_MODBUS_Protocol.pdf"

_f = partial(Field, dtype=DataType.FLOAT32, function_code=READ_INPUT, word_order="big")
_KWH = Decimal(1000)  # kWh / kVArh registers -> Wh / varh

# float32 1.0, 2.0, 3.0 as (high word, low word)
SYSTEM_TYPES = ((0x3F80, 0x0000), (0x4000, 0x0000), (0x4040, 0x0000))

TABLE = RegisterMap(
    name="sdm630",
    max_registers=80,
    max_gap=160,
    fields=(
        _f(M.VOLTAGE_L1, 0x0000),
        _f(M.VOLTAGE_L2, 0x0002),
        _f(M.VOLTAGE_L3, 0x0004),
        _f(M.CURRENT_L1, 0x0006),
        _f(M.CURRENT_L2, 0x0008),
        _f(M.CURRENT_L3, 0x000A),
        _f(M.POWER_L1, 0x000C),
        _f(M.POWER_L2, 0x000E),
        _f(M.POWER_L3, 0x0010),
        _f(M.APPARENT_POWER_L1, 0x0012),
        _f(M.APPARENT_POWER_L2, 0x0014),
        _f(M.APPARENT_POWER_L3, 0x0016),
        _f(M.REACTIVE_POWER_L1, 0x0018),
        _f(M.REACTIVE_POWER_L2, 0x001A),
        _f(M.REACTIVE_POWER_L3, 0x001C),
        _f(M.POWER_FACTOR_L1, 0x001E),
        _f(M.POWER_FACTOR_L2, 0x0020),
        _f(M.POWER_FACTOR_L3, 0x0022),
        _f(M.VOLTAGE_AVG, 0x002A),
        _f(M.CURRENT_TOTAL, 0x0030),
        _f(M.POWER_TOTAL, 0x0034),
        _f(M.APPARENT_POWER_TOTAL, 0x0038),
        _f(M.REACTIVE_POWER_TOTAL, 0x003C),
        _f(M.POWER_FACTOR, 0x003E),
        _f(M.PHASE_ANGLE, 0x0042),
        _f(M.FREQUENCY, 0x0046),
        _f(M.IMPORT_ENERGY, 0x0048, scale=_KWH),
        _f(M.EXPORT_ENERGY, 0x004A, scale=_KWH),
        _f(M.IMPORT_REACTIVE_ENERGY, 0x004C, scale=_KWH),
        _f(M.EXPORT_REACTIVE_ENERGY, 0x004E, scale=_KWH),
        _f(M.THD_VOLTAGE_L1, 0x00EA),
        _f(M.THD_VOLTAGE_L2, 0x00EC),
        _f(M.THD_VOLTAGE_L3, 0x00EE),
        _f(M.THD_VOLTAGE_AVG, 0x00F8),
        _f(M.TOTAL_ENERGY, 0x0156, scale=_KWH),
        _f(M.TOTAL_REACTIVE_ENERGY, 0x0158, scale=_KWH),
        _f(M.IMPORT_ENERGY_L1, 0x015A, scale=_KWH),
        _f(M.IMPORT_ENERGY_L2, 0x015C, scale=_KWH),
        _f(M.IMPORT_ENERGY_L3, 0x015E, scale=_KWH),
        _f(M.EXPORT_ENERGY_L1, 0x0160, scale=_KWH),
        _f(M.EXPORT_ENERGY_L2, 0x0162, scale=_KWH),
        _f(M.EXPORT_ENERGY_L3, 0x0164, scale=_KWH),
        _f(M.TOTAL_ENERGY_L1, 0x0166, scale=_KWH),
        _f(M.TOTAL_ENERGY_L2, 0x0168, scale=_KWH),
        _f(M.TOTAL_ENERGY_L3, 0x016A, scale=_KWH),
    ),
)

MODEL = MeterModel(
    key="sdm630",
    description="Eastron SDM630 three-phase meter (float32 input registers)",
    datasheet=DATASHEET,
    # Holding register 0x000A "system type" (float32 1.0 = 1P2W, 2.0 = 3P3W, 3.0 = 3P4W) exists on the
    # SDM630 but not on the single-phase SDM120, which is how a scan tells them apart.
    probe=Probe(RegisterRange(READ_HOLDING, 0x000A, 2), expect=SYSTEM_TYPES),
    rated_power_w=3 * 100 * 277,  # 100 A direct connection, 277 V L-N
    table=TABLE,
)
