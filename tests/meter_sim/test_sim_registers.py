"""Register encoding and the device tables, checked against the datasheet addresses."""

from __future__ import annotations

import math
import struct

import pytest
from meter_sim.devices import MODELS, build_spec
from meter_sim.devices.sunspec import MODEL_LENGTHS
from meter_sim.errors import ConfigError, ModbusExceptionReply
from meter_sim.quantities import Quantity as Q
from meter_sim.registers import (
    ILLEGAL_DATA_ADDRESS,
    ILLEGAL_DATA_VALUE,
    Kind,
    Point,
    RegisterMap,
    decode_value,
    encode_value,
)


def test_float32_is_ieee754_high_word_first() -> None:
    assert encode_value(Kind.FLOAT32, 1.0) == (0x3F80, 0x0000)
    words = encode_value(Kind.FLOAT32, 229.01)
    assert struct.unpack(">f", struct.pack(">HH", *words))[0] == pytest.approx(229.01, abs=1e-4)
    # Scale 3: Wh in, kWh in the register.
    assert decode_value(Kind.FLOAT32, encode_value(Kind.FLOAT32, 4_821_370.0, 3)) == pytest.approx(4821.37, rel=1e-7)


def test_float32_resolution_at_large_counters() -> None:
    # At 100 000 kWh a float32 resolves 1/128 kWh (7.8 Wh): the register is that coarse, not the sim.
    kwh = 100_000.004
    decoded = decode_value(Kind.FLOAT32, encode_value(Kind.FLOAT32, kwh))
    assert decoded != kwh
    assert abs(decoded - kwh) <= 1 / 256


def test_int16_rounds_clamps_and_keeps_the_not_implemented_marker_free() -> None:
    assert encode_value(Kind.INT16, -1068.4) == (0x10000 - 1068,)
    assert encode_value(Kind.INT16, 229.96, -1) == (2300,)
    assert encode_value(Kind.INT16, 1e9) == (32767,)
    assert encode_value(Kind.INT16, -1e9) == (0x8001,)  # -32767, never 0x8000
    assert decode_value(Kind.INT16, (0xFFFE,), 0) == -2
    assert decode_value(Kind.INT16, (2300,), -1) == pytest.approx(230.0)


def test_acc32_floors_scales_and_wraps() -> None:
    assert encode_value(Kind.ACC32, 4_821_370.99) == (4_821_370 >> 16, 4_821_370 & 0xFFFF)
    assert encode_value(Kind.ACC32, 4_821_379.0, 1) == (0x0007, 0x5B59)  # 482137 units of 10 Wh
    assert decode_value(Kind.ACC32, (0x0007, 0x5B59), 1) == 4_821_370
    assert encode_value(Kind.ACC32, 2**32 + 5.0) == (0, 5)


def test_sunssf_and_strings() -> None:
    assert encode_value(Kind.SUNSSF, -2) == (0xFFFE,)
    p = Point(0, Kind.STRING, const="GridTokenX", size=16)
    words = p.encode({})
    assert len(words) == 16
    assert struct.pack(">16H", *words).rstrip(b"\0") == b"GridTokenX"


def test_not_implemented_markers() -> None:
    assert Point(0, Kind.INT16).encode({}) == (0x8000,)
    assert Point(0, Kind.ACC32).encode({}) == (0, 0)
    assert Point(0, Kind.SUNSSF).encode({}) == (0x8000,)
    assert Point(0, Kind.FLOAT32).encode({}) == (0x7FC0, 0x0000)
    assert math.isnan(decode_value(Kind.FLOAT32, (0x7FC0, 0x0000)))


def test_register_map_refuses_overlaps_and_points_outside_its_range() -> None:
    with pytest.raises(ConfigError, match="overlap"):
        RegisterMap(4, 0, 10, [Point(0, Kind.FLOAT32, Q.V_L1), Point(1, Kind.FLOAT32, Q.V_L2)])
    with pytest.raises(ConfigError, match="outside"):
        RegisterMap(4, 0, 10, [Point(9, Kind.FLOAT32, Q.V_L1)])
    with pytest.raises(ConfigError, match="both"):
        Point(0, Kind.FLOAT32, Q.V_L1, const=1.0)


def test_register_map_reads_gaps_as_zero_and_rejects_bad_ranges() -> None:
    m = RegisterMap(4, 0, 8, [Point(0, Kind.FLOAT32, Q.V_L1), Point(4, Kind.FLOAT32, Q.V_L2)])
    values = {Q.V_L1: 1.0, Q.V_L2: 2.0}
    assert m.read(0, 8, values) == [0x3F80, 0, 0, 0, 0x4000, 0, 0, 0]
    assert m.read(1, 4, values) == [0, 0, 0, 0x4000]  # a read may start mid-value, as on the meter
    with pytest.raises(ModbusExceptionReply) as exc:
        m.read(6, 4, values)
    assert exc.value.code == ILLEGAL_DATA_ADDRESS
    for bad_count in (0, 126):
        with pytest.raises(ModbusExceptionReply) as exc:
            m.read(0, bad_count, values)
        assert exc.value.code == ILLEGAL_DATA_VALUE


# Independent copy of the datasheet addresses (docs: shared domain facts), not taken from the module.
SDM630_DATASHEET = {
    0x0000: Q.V_L1, 0x0002: Q.V_L2, 0x0004: Q.V_L3, 0x0006: Q.I_L1, 0x0008: Q.I_L2, 0x000A: Q.I_L3,
    0x000C: Q.P_L1, 0x000E: Q.P_L2, 0x0010: Q.P_L3, 0x0012: Q.S_L1, 0x0014: Q.S_L2, 0x0016: Q.S_L3,
    0x0018: Q.Q_L1, 0x001A: Q.Q_L2, 0x001C: Q.Q_L3, 0x001E: Q.PF_L1, 0x0020: Q.PF_L2, 0x0022: Q.PF_L3,
    0x0034: Q.P_TOTAL, 0x0038: Q.S_TOTAL, 0x003C: Q.Q_TOTAL, 0x003E: Q.PF_TOTAL, 0x0042: Q.ANGLE_TOTAL,
    0x0046: Q.FREQUENCY, 0x0048: Q.IMPORT_WH, 0x004A: Q.EXPORT_WH, 0x004C: Q.IMPORT_VARH,
    0x004E: Q.EXPORT_VARH, 0x00EA: Q.THD_V_L1, 0x00EC: Q.THD_V_L2, 0x00EE: Q.THD_V_L3, 0x00F8: Q.THD_V_AVG,
    0x0156: Q.TOTAL_WH, 0x0158: Q.TOTAL_VARH, 0x015A: Q.IMPORT_WH_L1, 0x015C: Q.IMPORT_WH_L2,
    0x015E: Q.IMPORT_WH_L3, 0x0160: Q.EXPORT_WH_L1, 0x0162: Q.EXPORT_WH_L2, 0x0164: Q.EXPORT_WH_L3,
    0x0166: Q.TOTAL_WH_L1, 0x0168: Q.TOTAL_WH_L2, 0x016A: Q.TOTAL_WH_L3,
}
SDM120_DATASHEET = {
    0x0000: Q.V_L1, 0x0006: Q.I_L1, 0x000C: Q.P_L1, 0x0012: Q.S_L1, 0x0018: Q.Q_L1, 0x001E: Q.PF_L1,
    0x0046: Q.FREQUENCY, 0x0048: Q.IMPORT_WH, 0x004A: Q.EXPORT_WH, 0x004C: Q.IMPORT_VARH,
    0x004E: Q.EXPORT_VARH, 0x0156: Q.TOTAL_WH, 0x0158: Q.TOTAL_VARH,
}


@pytest.mark.parametrize(("model", "datasheet"), [("sdm630", SDM630_DATASHEET), ("sdm120", SDM120_DATASHEET)])
def test_sdm_input_registers_match_the_datasheet(model: str, datasheet: dict[int, Q]) -> None:
    spec = build_spec(model, 1)
    input_map = spec.maps[4]
    for address, quantity in datasheet.items():
        point = input_map.point_at(address)
        assert point.quantity is quantity, f"{model} {address:#06x}"
        assert point.kind is Kind.FLOAT32
        energy = quantity.value.endswith(("wh", "varh"))
        assert point.scale == (3 if energy else 0), f"{model} {address:#06x} kWh registers hold Wh/1000"
    assert input_map.start == 0 and input_map.end == max(datasheet) + 2


def test_registry_knows_the_three_models_and_names_them_in_errors() -> None:
    assert set(MODELS) == {"sdm120", "sdm630", "sunspec"}
    with pytest.raises(ConfigError, match="sdm120, sdm630, sunspec"):
        build_spec("sdm72", 1)


def _walk(spec_map: RegisterMap) -> list[tuple[int, int, int]]:
    """SunSpec discovery as a client does it, on the encoded words."""
    words = spec_map.read(40000, 2, {})
    assert words == [0x5375, 0x6E53]
    found = []
    addr = 40002
    while True:
        model_id, length = spec_map.read(addr, 2, {})
        if model_id == 0xFFFF:
            assert length == 0
            return found
        found.append((model_id, addr, length))
        addr += 2 + length


def test_sunspec_layout_matches_the_worked_example() -> None:
    spec = build_spec("sunspec", 1)
    m = spec.maps[3]
    assert _walk(m) == [(1, 40002, 66), (203, 40070, 105)]
    assert m.point_at(40108).name == "203.TotWhExp"
    assert m.point_at(40116).name == "203.TotWhImp"
    assert m.point_at(40124).name == "203.TotWh_SF"
    assert m.point_at(40070 + 18).name == "203.W"
    assert m.point_at(40070 + 22).name == "203.W_SF"
    assert m.end == 40070 + 2 + 105 + 2


def test_sunspec_float_adds_model_213_after_203() -> None:
    m = build_spec("sunspec", 1, sunspec_float=True).maps[3]
    assert _walk(m) == [(1, 40002, 66), (203, 40070, 105), (213, 40177, 124)]
    assert m.point_at(40177 + 28).name == "213.W"
    assert m.point_at(40177 + 60).name == "213.TotWhExp"
    assert m.point_at(40177 + 68).name == "213.TotWhImp"
    assert MODEL_LENGTHS == {1: 66, 203: 105, 213: 124}


def test_sunspec_common_model_names_the_maker_and_the_unit() -> None:
    m = build_spec("sunspec", 42).maps[3]
    mn = struct.pack(">16H", *m.read(40004, 16, {})).rstrip(b"\0").decode()
    sn = struct.pack(">16H", *m.read(40004 + 48, 16, {})).rstrip(b"\0").decode()
    assert mn == "GridTokenX"
    assert "042" in sn
    assert m.read(40004 + 64, 1, {}) == [42]  # DA: device address


def test_sunspec_energy_scale_factor_is_configurable_and_checked() -> None:
    m = build_spec("sunspec", 1, sunspec_energy_sf=1).maps[3]
    assert m.read(40124, 1, {}) == [1]
    with pytest.raises(ConfigError, match="TotWh_SF"):
        build_spec("sunspec", 1, sunspec_energy_sf=11)
