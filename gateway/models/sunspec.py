"""SunSpec meters (holding registers, function 03), found by discovery rather than fixed addresses.

Addresses in these tables are offsets from the model's id register; :mod:`gateway.sunspec_discovery`
finds where the model sits and :meth:`RegisterMap.resolve` makes them absolute.  Worked example from the
specification: model 1 (length 66) at 40002, so model 203's id is at 40070 and TotWhImp (offset 46) at
40116-40117.

* Models 201-204 (single, split, wye, delta): int16 values with a sunssf scale factor each group,
  energies acc32 in Wh with TotWh_SF.  All four share one layout; a phase a model lacks reads 0x8000.
* Models 211-214: the same quantities as float32, no scale factors; NaN means "not implemented".

Power factor is a percentage in SunSpec and is scaled to -1..1; W is positive for import.
"""

from __future__ import annotations

from decimal import Decimal
from functools import partial

from gateway.measurements import Measurement as M
from gateway.register_map import READ_HOLDING, DataType, Field, MeterModel, Probe, RegisterMap, RegisterRange

# The SunSpec information models (model_203.json, model_213.json, ...).
DATASHEET = "https://github.com/sunspec/models/tree/master/json"

SUNS_MARKER = (0x5375, 0x6E53)  # "SunS"
BASE_ADDRESSES = (40000, 0, 50000)
END_MODEL_ID = 0xFFFF

_PERCENT = Decimal("0.01")

_i = partial(Field, dtype=DataType.INT16, function_code=READ_HOLDING)
_acc = partial(Field, dtype=DataType.ACC32, function_code=READ_HOLDING, scale_factor_at=54)

INT_METER = RegisterMap(
    name="sunspec-int",
    relative=True,
    not_implemented_markers=True,
    fields=(
        _i(M.CURRENT_TOTAL, 2, scale_factor_at=6),
        _i(M.CURRENT_L1, 3, scale_factor_at=6),
        _i(M.CURRENT_L2, 4, scale_factor_at=6),
        _i(M.CURRENT_L3, 5, scale_factor_at=6),
        _i(M.VOLTAGE_AVG, 7, scale_factor_at=15),
        _i(M.VOLTAGE_L1, 8, scale_factor_at=15),
        _i(M.VOLTAGE_L2, 9, scale_factor_at=15),
        _i(M.VOLTAGE_L3, 10, scale_factor_at=15),
        _i(M.FREQUENCY, 16, scale_factor_at=17),
        _i(M.POWER_TOTAL, 18, scale_factor_at=22),
        _i(M.POWER_L1, 19, scale_factor_at=22),
        _i(M.POWER_L2, 20, scale_factor_at=22),
        _i(M.POWER_L3, 21, scale_factor_at=22),
        _i(M.APPARENT_POWER_TOTAL, 23, scale_factor_at=27),
        _i(M.APPARENT_POWER_L1, 24, scale_factor_at=27),
        _i(M.APPARENT_POWER_L2, 25, scale_factor_at=27),
        _i(M.APPARENT_POWER_L3, 26, scale_factor_at=27),
        _i(M.REACTIVE_POWER_TOTAL, 28, scale_factor_at=32),
        _i(M.REACTIVE_POWER_L1, 29, scale_factor_at=32),
        _i(M.REACTIVE_POWER_L2, 30, scale_factor_at=32),
        _i(M.REACTIVE_POWER_L3, 31, scale_factor_at=32),
        _i(M.POWER_FACTOR, 33, scale_factor_at=37, scale=_PERCENT),
        _i(M.POWER_FACTOR_L1, 34, scale_factor_at=37, scale=_PERCENT),
        _i(M.POWER_FACTOR_L2, 35, scale_factor_at=37, scale=_PERCENT),
        _i(M.POWER_FACTOR_L3, 36, scale_factor_at=37, scale=_PERCENT),
        _acc(M.EXPORT_ENERGY, 38),
        _acc(M.EXPORT_ENERGY_L1, 40),
        _acc(M.EXPORT_ENERGY_L2, 42),
        _acc(M.EXPORT_ENERGY_L3, 44),
        _acc(M.IMPORT_ENERGY, 46),
        _acc(M.IMPORT_ENERGY_L1, 48),
        _acc(M.IMPORT_ENERGY_L2, 50),
        _acc(M.IMPORT_ENERGY_L3, 52),
    ),
)

_f = partial(Field, dtype=DataType.FLOAT32, function_code=READ_HOLDING)

FLOAT_METER = RegisterMap(
    name="sunspec-float",
    relative=True,
    not_implemented_markers=True,
    fields=(
        _f(M.CURRENT_TOTAL, 2),
        _f(M.CURRENT_L1, 4),
        _f(M.CURRENT_L2, 6),
        _f(M.CURRENT_L3, 8),
        _f(M.VOLTAGE_AVG, 10),
        _f(M.VOLTAGE_L1, 12),
        _f(M.VOLTAGE_L2, 14),
        _f(M.VOLTAGE_L3, 16),
        _f(M.FREQUENCY, 26),
        _f(M.POWER_TOTAL, 28),
        _f(M.POWER_L1, 30),
        _f(M.POWER_L2, 32),
        _f(M.POWER_L3, 34),
        _f(M.APPARENT_POWER_TOTAL, 36),
        _f(M.APPARENT_POWER_L1, 38),
        _f(M.APPARENT_POWER_L2, 40),
        _f(M.APPARENT_POWER_L3, 42),
        _f(M.REACTIVE_POWER_TOTAL, 44),
        _f(M.REACTIVE_POWER_L1, 46),
        _f(M.REACTIVE_POWER_L2, 48),
        _f(M.REACTIVE_POWER_L3, 50),
        _f(M.POWER_FACTOR, 52, scale=_PERCENT),
        _f(M.POWER_FACTOR_L1, 54, scale=_PERCENT),
        _f(M.POWER_FACTOR_L2, 56, scale=_PERCENT),
        _f(M.POWER_FACTOR_L3, 58, scale=_PERCENT),
        _f(M.EXPORT_ENERGY, 60),
        _f(M.EXPORT_ENERGY_L1, 62),
        _f(M.EXPORT_ENERGY_L2, 64),
        _f(M.EXPORT_ENERGY_L3, 66),
        _f(M.IMPORT_ENERGY, 68),
        _f(M.IMPORT_ENERGY_L1, 70),
        _f(M.IMPORT_ENERGY_L2, 72),
        _f(M.IMPORT_ENERGY_L3, 74),
    ),
)

# Model id -> table, in order of preference when a device carries several meter models.
METER_MODELS: dict[int, RegisterMap] = {
    203: INT_METER,
    213: FLOAT_METER,
    201: INT_METER,
    202: INT_METER,
    204: INT_METER,
    211: FLOAT_METER,
    212: FLOAT_METER,
    214: FLOAT_METER,
}

MODEL = MeterModel(
    key="sunspec",
    description="SunSpec meter, models 201-204 (int16 + scale factors) or 211-214 (float32)",
    datasheet=DATASHEET,
    probe=Probe(RegisterRange(READ_HOLDING, BASE_ADDRESSES[0], 2), expect=(SUNS_MARKER,)),
    rated_power_w=3 * 100 * 277,
    sunspec_tables=METER_MODELS,
)
