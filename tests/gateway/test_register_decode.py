"""Register decoding and the one energy rounding step."""

from __future__ import annotations

import struct
from decimal import Decimal

import pytest
from pymodbus.client.mixin import ModbusClientMixin

from gateway.decode import DecodeError, RegisterImage, decode_raw, decode_table, to_wh
from gateway.measurements import Measurement as M
from gateway.models import MODELS
from gateway.models.sunspec import FLOAT_METER, INT_METER
from gateway.register_map import DataType, Field, RegisterMap, RegisterRange

DT = ModbusClientMixin.DATATYPE


def f32_regs(value: float) -> list[int]:
    hi, lo = struct.unpack(">HH", struct.pack(">f", value))
    return [hi, lo]


def test_float32_word_order_mistake_is_the_classic_tiny_number() -> None:
    regs = f32_regs(229.01)
    assert decode_raw(regs, DataType.FLOAT32) == pytest.approx(229.01, abs=1e-4)
    wrong = decode_raw(regs, DataType.FLOAT32, word_order="little")
    assert abs(wrong) < 1e-30  # what a swapped-word decoder shows instead of a voltage
    assert decode_raw(list(reversed(regs)), DataType.FLOAT32, word_order="little") == decode_raw(
        regs, DataType.FLOAT32
    )


def test_byte_order_within_registers() -> None:
    regs = f32_regs(50.0)
    swapped = [((r & 0xFF) << 8) | (r >> 8) for r in regs]
    assert decode_raw(swapped, DataType.FLOAT32, byte_order="little") == 50.0


@pytest.mark.parametrize(
    ("regs", "dtype", "expected"),
    [
        ([0xFFFF], DataType.INT16, -1),
        ([0xFFFF], DataType.UINT16, 65535),
        ([0x8000], DataType.SUNSSF, -32768),
        ([0xFFFF, 0xFFFE], DataType.INT32, -2),
        ([0x0001, 0x0000], DataType.UINT32, 65536),
        ([0x0012, 0xD687], DataType.ACC32, 1234567),
    ],
)
def test_integer_types(regs: list[int], dtype: DataType, expected: int) -> None:
    assert decode_raw(regs, dtype) == expected


def test_wrong_register_count_is_an_error() -> None:
    with pytest.raises(DecodeError):
        decode_raw([1], DataType.FLOAT32)


def _sdm_image(values: dict[int, float], table: RegisterMap) -> RegisterImage:
    image = RegisterImage()
    for r in table.reads():
        for i in range(r.count):
            image.add(RegisterRange(r.function_code, r.address + i, 1), [0])
    for address, v in values.items():
        image.add(RegisterRange(4, address, 2), f32_regs(v))
    return image


def test_sdm630_energy_scaled_to_wh_exactly() -> None:
    table = MODELS["sdm630"].table
    assert table is not None
    image = _sdm_image({0x0048: 4821.37, 0x004A: 2310.58, 0x0034: -1234.5}, table)
    values = decode_table(table, image)
    # The exact decimal of the float32 nearest 4821.37, times 1000: no binary noise added by us.
    assert values[M.IMPORT_ENERGY] == Decimal(struct.unpack(">f", struct.pack(">f", 4821.37))[0]) * 1000
    assert to_wh(values[M.IMPORT_ENERGY]) == 4821370
    assert to_wh(values[M.EXPORT_ENERGY]) == 2310580
    assert values[M.POWER_TOTAL] == Decimal("-1234.5")
    assert set(values) == set(table.measurements)


def test_to_wh_rounds_half_to_even() -> None:
    assert to_wh(Decimal("1.5")) == 2
    assert to_wh(Decimal("2.5")) == 2
    assert to_wh(Decimal("2.5000001")) == 3
    assert to_wh(Decimal("-0.5")) == 0
    # Real ties from a meter: k/16 kWh is exact in float32 and k * 62.5 Wh is a half when k is odd.
    assert to_wh(Decimal(decode_raw(f32_regs(1 / 16), DataType.FLOAT32)) * 1000) == 62  # 62.5
    assert to_wh(Decimal(decode_raw(f32_regs(3 / 16), DataType.FLOAT32)) * 1000) == 188  # 187.5
    with pytest.raises(DecodeError):
        to_wh(Decimal("NaN"))


def test_same_bits_same_wh_at_large_totals() -> None:
    # At 100,000 kWh neighbouring float32 values are 7.8125 Wh apart: Wh steps, deterministically.
    a = struct.unpack(">f", struct.pack(">f", 100000.0))[0]
    b = struct.unpack(">f", struct.pack(">I", struct.unpack(">I", struct.pack(">f", a))[0] + 1))[0]
    assert (b - a) * 1000 == 7.8125
    assert to_wh(Decimal(a) * 1000) == 100_000_000
    assert to_wh(Decimal(b) * 1000) == 100_000_008  # 100000007.8125 rounds up


def test_nan_from_an_eastron_meter_is_kept_for_plausibility() -> None:
    table = MODELS["sdm120"].table
    assert table is not None
    image = _sdm_image({0x0048: float("nan"), 0x004A: float("inf")}, table)
    values = decode_table(table, image)
    assert values[M.IMPORT_ENERGY].is_nan()
    assert values[M.EXPORT_ENERGY].is_infinite()


def _sunspec_image(base: int, registers: dict[int, list[int]], length: int) -> RegisterImage:
    image = RegisterImage()
    data = [0] * length
    for offset, regs in registers.items():
        data[offset - 2 : offset - 2 + len(regs)] = regs
    image.add(RegisterRange(3, base + 2, length), data)
    return image


def test_sunspec_int_model_scale_factors_and_markers() -> None:
    base = 40070  # the worked example: model 203 right after model 1 at 40000
    table = INT_METER.resolve(base)
    assert table[M.EXPORT_ENERGY].address == 40108
    assert table[M.IMPORT_ENERGY].address == 40116
    assert table[M.IMPORT_ENERGY].scale_factor_at == 40124
    image = _sunspec_image(
        base,
        {
            2: [523],  # A total
            3: [0x8000],  # AphA not implemented
            6: [0xFFFE],  # A_SF = -2 -> 5.23 A
            8: [2301],  # PhVphA
            15: [0xFFFF],  # V_SF = -1 -> 230.1 V
            16: [5000],
            17: [0x8000],  # Hz_SF not implemented -> Hz absent
            18: [0xFB2E],  # W = -1234
            22: [1],  # W_SF = 1 -> -12340 W
            33: [95],
            37: [0],  # PF 95 % -> 0.95
            38: [0, 0],  # TotWhExp acc32 0 = not accumulated
            46: [0x0012, 0xD687],  # TotWhImp 1234567
            54: [0x0001],  # TotWh_SF = 1 -> x10
        },
        105,
    )
    values = decode_table(table, image)
    assert values[M.CURRENT_TOTAL] == Decimal("5.23")
    assert M.CURRENT_L1 not in values
    assert values[M.VOLTAGE_L1] == Decimal("230.1")
    assert M.FREQUENCY not in values
    assert values[M.POWER_TOTAL] == Decimal(-12340)
    assert values[M.POWER_FACTOR] == Decimal("0.95")
    assert M.EXPORT_ENERGY not in values
    assert to_wh(values[M.IMPORT_ENERGY]) == 12345670


def test_sunspec_float_model_nan_means_absent() -> None:
    base = 40070
    table = FLOAT_METER.resolve(base)
    assert table[M.POWER_TOTAL].address == base + 28
    assert table[M.EXPORT_ENERGY].address == base + 60
    assert table[M.IMPORT_ENERGY].address == base + 68
    image = _sunspec_image(
        base, {28: f32_regs(-1500.0), 60: [0x7FC0, 0x0000], 68: f32_regs(123456.0)}, 124
    )
    values = decode_table(table, image)
    assert values[M.POWER_TOTAL] == Decimal(-1500)
    assert M.EXPORT_ENERGY not in values
    assert to_wh(values[M.IMPORT_ENERGY]) == 123456


def test_missing_register_is_named() -> None:
    table = RegisterMap("t", (Field(M.FREQUENCY, 0x46),))
    with pytest.raises(DecodeError, match="register 70"):
        decode_table(table, RegisterImage())


def test_short_response_is_refused() -> None:
    with pytest.raises(DecodeError, match="got 1 registers"):
        RegisterImage().add(RegisterRange(4, 0, 2), [1])


@pytest.mark.parametrize("table_name", ["sdm120", "sdm630", "sunspec-int", "sunspec-float", "sdm630-subset"])
def test_compiled_decoder_agrees_with_decode_table_to_the_last_bit(table_name: str) -> None:
    """The poller's TableDecoder (answer bytes -> floats, exact Decimals only for counters and power) must
    give exactly what decode_table gives, for any register contents: random words, NaN and infinity,
    negative zero, SunSpec's not-implemented markers and out-of-range scale factors."""
    import math
    import random
    import struct

    from gateway.blocks import plan_table
    from gateway.decode import EXACT_MEASUREMENTS, TableDecoder, as_floats
    from gateway.measurements import Measurement
    from gateway.models import get_model
    from gateway.models.sunspec import FLOAT_METER, INT_METER

    tables = {
        "sdm120": get_model("sdm120").table,
        "sdm630": get_model("sdm630").table,
        "sunspec-int": INT_METER.resolve(40070),
        "sunspec-float": FLOAT_METER.resolve(40177),
    }
    sdm630 = tables["sdm630"]
    assert sdm630 is not None
    tables["sdm630-subset"] = sdm630.select(
        [Measurement.IMPORT_ENERGY, Measurement.POWER_TOTAL, Measurement.THD_VOLTAGE_L1, Measurement.FREQUENCY]
    )
    table = tables[table_name]
    assert table is not None
    plan = plan_table(table)
    decoder = TableDecoder(table, plan)
    rng = random.Random(table_name)
    specials = [0x7FC0_0000, 0x7F80_0000, 0xFF80_0000, 0x8000_0000, 0x0000_0000, 0x4580_0000]
    for _ in range(300):
        payloads = []
        for request in plan:
            words = [rng.getrandbits(16) for _ in range(request.count)]
            for i in range(0, request.count - 1, 2):
                roll = rng.random()
                if roll < 0.1:
                    bits = rng.choice(specials)
                    words[i], words[i + 1] = bits >> 16, bits & 0xFFFF
                elif roll < 0.2:
                    words[i] = rng.choice([0x8000, 0xFFFF, 0x0000, 0x0003, 0xFFFE, 0x000B])  # markers, sunssf
            payloads.append(struct.pack(f">{request.count}H", *words))
        image = RegisterImage()
        for request, payload in zip(plan, payloads, strict=True):
            image.add(request, list(struct.unpack(f">{request.count}H", payload)))
        expected = decode_table(table, image)
        values, exact = decoder.decode(payloads)
        assert list(values) == [m.value for m in expected]  # same measurements, same (table) order
        floats = as_floats(expected)
        for name, value in values.items():
            want = floats[name]
            same = value == want and math.copysign(1, value) == math.copysign(1, want)
            assert (math.isnan(value) and math.isnan(want)) or same, (name, value, want)
        for m in EXACT_MEASUREMENTS:
            if m in expected:
                assert str(exact[m]) == str(expected[m]), (m, exact[m], expected[m])
            else:
                assert m not in exact
