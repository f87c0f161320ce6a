"""Values outside physics are flagged, and the baseline only moves on good data."""

from __future__ import annotations

from decimal import Decimal

from gateway.measurements import Measurement as M
from gateway.plausibility import PlausibilityChecker, float32_step_wh

HOUR_MS = 3_600_000


def values(imp: float | str, exp: float | str = 0, power: float | str | None = 500) -> dict[M, Decimal]:
    v = {M.IMPORT_ENERGY: Decimal(imp), M.EXPORT_ENERGY: Decimal(exp)}
    if power is not None:
        v[M.POWER_TOTAL] = Decimal(power)
    return v


def test_good_samples_pass_and_round_once() -> None:
    c = PlausibilityChecker(rated_power_w=10_000)
    v = c.check(values("1000.5", "20.4", "-1234.5"), 0)
    assert v.ok and (v.import_wh, v.export_wh, v.power_w) == (1000, 20, -1234)
    v = c.check(values(1500, 20), HOUR_MS)
    assert v.ok and v.import_wh == 1500


def test_nan_inf_and_negative_counters_are_flagged_and_replaced_by_last_good() -> None:
    c = PlausibilityChecker(rated_power_w=10_000)
    assert c.check(values(1000, 10), 0).ok
    v = c.check(values("NaN", "-5"), 1000)
    assert not v.ok
    assert "import_energy is NaN" in v.problems
    assert any("export_energy is negative" in p for p in v.problems)
    assert (v.import_wh, v.export_wh) == (1000, 10)  # last good stands in; never invented data
    v = c.check({**values(1001, 10), M.FREQUENCY: Decimal("Infinity")}, 2000)
    assert v.problems == ("frequency is infinite",)


def test_counter_going_backwards_is_flagged_until_rebaselined() -> None:
    c = PlausibilityChecker(rated_power_w=10_000, rebaseline_after=3)
    assert c.check(values(50_000), 0).ok
    flagged = [c.check(values(w), t * 1000) for t, w in ((1, 0), (2, 1), (3, 2))]
    assert all(not v.ok for v in flagged)
    assert "import_energy went backwards: 50000 Wh -> 0 Wh" in flagged[0].problems
    assert any("new baseline" in p for p in flagged[2].problems)
    after = c.check(values(3), 4000)
    assert after.ok and c.last_good is not None and c.last_good.import_wh == 3


def test_inconsistent_flagged_samples_do_not_rebaseline() -> None:
    c = PlausibilityChecker(rated_power_w=10_000, rebaseline_after=2)
    assert c.check(values(50_000), 0).ok
    assert not c.check(values(10), 1000).ok
    assert not c.check(values(5), 2000).ok  # went down again: streak restarts
    v = c.check(values(6), 3000)
    assert any("new baseline" in p for p in v.problems)


def test_absurd_jump_is_flagged() -> None:
    c = PlausibilityChecker(rated_power_w=10_000)
    assert c.check(values(1000), 0).ok
    # 10 kW x 1.5 for one hour is 15 kWh; 20 kWh in an hour is not physics.
    v = c.check(values(21_000), HOUR_MS)
    assert any("jumped by 20000 Wh" in p for p in v.problems)
    assert c.last_good is not None and c.last_good.import_wh == 1000
    assert c.check(values(14_000), HOUR_MS).ok


def test_power_beyond_rating_is_flagged() -> None:
    c = PlausibilityChecker(rated_power_w=1000)
    v = c.check(values(1, power=5000), 0)
    assert v.power_w is None
    assert any("beyond" in p for p in v.problems)


def test_float32_resolution_is_tolerated() -> None:
    assert float32_step_wh(100_000_000) == 7.8125
    c = PlausibilityChecker(rated_power_w=1)
    assert c.check(values(100_000_000, power=0), 0).ok
    assert c.check(values(100_000_008, power=0), 1).ok  # one register step up in a millisecond is not a jump
