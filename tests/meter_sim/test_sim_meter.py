"""SimMeter without a network: registers against truth(), the clock, faults and counter resets."""

from __future__ import annotations

import struct

import pytest
from meter_sim import ConfigError, Faults, SimMeter
from meter_sim.errors import ModbusExceptionReply
from meter_sim.quantities import Quantity as Q
from meter_sim.registers import ILLEGAL_DATA_ADDRESS, ILLEGAL_FUNCTION
from simtest_helpers import ManualClock


def _f32(words: list[int]) -> float:
    return struct.unpack(">f", struct.pack(">HH", *words))[0]


def test_sdm630_registers_encode_exactly_what_truth_reports(manual_clock: ManualClock) -> None:
    m = SimMeter("sdm630", 1, speedup=60, clock=manual_clock)
    manual_clock.advance(120.0)  # two simulated hours
    words = m.read_registers(4, 0x0000, 0x4C)
    t = m.truth()  # the clock has not moved, so this is the same instant
    assert _f32(words[0x48:0x4A]) == t["import_kwh"]
    assert _f32(words[0x4A:0x4C]) == t["export_kwh"]
    assert _f32(words[0x34:0x36]) == t["power_w"]
    assert t["import_kwh"] == pytest.approx(t["import_kwh_exact"], abs=0.001)
    assert m.last_truth == t
    phases = sum(_f32(words[a:a + 2]) for a in (0x0C, 0x0E, 0x10))
    assert phases == pytest.approx(t["power_w"], abs=0.01)


def test_start_counters_are_realistic_and_configurable(manual_clock: ManualClock) -> None:
    default = SimMeter("sdm630", 1, speedup=0, clock=manual_clock).truth()
    assert 1000 < default["import_kwh"] < 100_000 and 1000 < default["export_kwh"] < 100_000
    m = SimMeter("sdm120", 2, speedup=0, start_import_kwh=100_000.0, start_export_kwh=0.0, clock=manual_clock)
    t = m.truth()
    assert t["import_kwh"] == 100_000.0 and t["export_kwh"] == 0.0
    with pytest.raises(ConfigError, match="start_import_kwh"):
        SimMeter("sdm120", 2, start_import_kwh=-1.0)


def test_counters_grow_with_the_speedup_and_stay_monotonic(manual_clock: ManualClock) -> None:
    m = SimMeter("sdm630", 1, speedup=3600, clock=manual_clock)
    before = m.truth()
    last = before
    for _ in range(24):
        manual_clock.advance(1.0)  # one simulated hour each
        now = m.truth()
        assert now["import_kwh"] >= last["import_kwh"] and now["export_kwh"] >= last["export_kwh"]
        last = now
    assert last["sim_time_s"] - before["sim_time_s"] == pytest.approx(24 * 3600)
    assert last["import_kwh"] - before["import_kwh"] > 2.0  # evening and night from the grid
    assert last["export_kwh"] - before["export_kwh"] > 2.0  # a sunny late morning and afternoon


def test_speedup_zero_and_pause_hold_the_meter_still(manual_clock: ManualClock) -> None:
    frozen = SimMeter("sdm630", 1, speedup=0, clock=manual_clock)
    first = frozen.truth()
    manual_clock.advance(1000.0)
    assert frozen.truth() == first
    m = SimMeter("sunspec", 1, speedup=600, clock=manual_clock)
    m.pause()
    held = m.truth()
    manual_clock.advance(10.0)
    assert m.truth() == held
    m.resume()
    manual_clock.advance(10.0)
    assert m.truth()["sim_time_s"] == pytest.approx(held["sim_time_s"] + 6000)


def test_sunspec_truth_decodes_acc32_with_the_scale_factor(manual_clock: ManualClock) -> None:
    m = SimMeter("sunspec", 5, speedup=600, sunspec_energy_sf=1, clock=manual_clock)
    manual_clock.advance(30.0)
    words = m.read_registers(3, 40070, 56)
    t = m.truth()
    sf = struct.unpack(">h", struct.pack(">H", words[54]))[0]
    assert sf == 1
    imp = ((words[46] << 16) | words[47]) * 10**sf
    exp = ((words[38] << 16) | words[39]) * 10**sf
    assert imp == t["import_wh"] and exp == t["export_wh"]
    # acc32 is floored to whole 10 Wh units
    assert 0 <= t["import_wh_exact"] - imp < 10 and 0 <= t["export_wh_exact"] - exp < 10
    watts = struct.unpack(">h", struct.pack(">H", words[18]))[0]
    assert watts == t["power_w"] == round(t["power_w_exact"])


def test_sunspec_float_truth_covers_model_213(manual_clock: ManualClock) -> None:
    m = SimMeter("sunspec", 1, speedup=0, sunspec_float=True, clock=manual_clock)
    t = m.truth()
    words = m.read_registers(3, 40177 + 60, 10)
    assert _f32(words[0:2]) == t["m213_export_wh"]
    assert _f32(words[8:10]) == t["m213_import_wh"]
    assert t["m213_import_kwh"] == pytest.approx(t["import_kwh_exact"], abs=1e-3)


def test_sdm120_is_single_phase(manual_clock: ManualClock) -> None:
    m = SimMeter("sdm120", 1, speedup=0, clock=manual_clock)
    values = m.measurements()
    assert values[Q.P_L1] == values[Q.P_TOTAL]
    assert values[Q.V_L2] == 0.0 and values[Q.I_L3] == 0.0
    assert 220 < values[Q.V_L1] < 240 and 49.9 < values[Q.FREQUENCY] < 50.1
    words = m.read_registers(4, 0x000C, 2)
    assert _f32(words) == m.truth()["power_w"]


def test_meters_on_one_seed_differ_by_unit(manual_clock: ManualClock) -> None:
    a = SimMeter("sdm630", 1, seed=7, speedup=0, clock=manual_clock)
    b = SimMeter("sdm630", 2, seed=7, speedup=0, clock=manual_clock)
    again = SimMeter("sdm630", 1, seed=7, speedup=0, clock=manual_clock)
    assert a.truth()["power_w"] != b.truth()["power_w"]
    assert a.truth() == again.truth()


def test_reset_counters_drops_to_zero_then_grows(manual_clock: ManualClock) -> None:
    m = SimMeter("sdm630", 1, speedup=3600, clock=manual_clock)
    manual_clock.advance(0.5)
    assert m.truth()["import_kwh"] > 4000
    m.reset_counters()
    t = m.truth()
    assert t["import_kwh"] == 0.0 and t["export_kwh"] == 0.0
    manual_clock.advance(2.0)
    t = m.truth()
    assert 0 < t["export_kwh"] + t["import_kwh"] < 20


def test_unsupported_reads_raise_modbus_exceptions(manual_clock: ManualClock) -> None:
    sdm = SimMeter("sdm630", 1, clock=manual_clock)
    with pytest.raises(ModbusExceptionReply) as exc:
        sdm.read_registers(3, 40000, 2)  # a SunSpec probe on an Eastron meter
    assert exc.value.code == ILLEGAL_DATA_ADDRESS
    assert _f32(sdm.read_registers(3, 0x0014, 2)) == 1.0  # its node address holding register
    sunspec = SimMeter("sunspec", 1, clock=manual_clock)
    with pytest.raises(ModbusExceptionReply) as exc:
        sunspec.read_registers(4, 0, 2)
    assert exc.value.code == ILLEGAL_FUNCTION


def test_faults_validate_every_change() -> None:
    f = Faults()
    assert not f.any
    f.exception_code = 6
    f.delay_s = 0.5
    assert f.any
    with pytest.raises(ConfigError, match="exception_code"):
        f.exception_code = 0
    with pytest.raises(ConfigError, match="delay_s"):
        f.delay_s = -1.0
    f.no_response = True
    f.clear()
    assert f == Faults()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"model": "sdm630", "unit": 0}, "unit id"),
    ({"model": "sdm630", "unit": 248}, "unit id"),
    ({"model": "abb", "unit": 1}, "unknown meter model"),
    ({"model": "sdm630", "unit": 1, "speedup": -1.0}, "speedup"),
    ({"model": "sdm630", "unit": 1, "speedup": float("inf")}, "speedup"),
])
def test_bad_meter_configuration_is_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SimMeter(**kwargs)  # type: ignore[arg-type]
