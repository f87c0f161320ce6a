"""Profiles: seeded solar bell curve with clouds, household load peaks, and exact energy integration."""

from __future__ import annotations

import math
import statistics

import pytest
from meter_sim.profiles import (
    DAY_S,
    STEP_S,
    Counters,
    EnergyIntegrator,
    Profile,
    SiteProfile,
    derive_seed,
    uniform,
)

H = 3600.0
START = Counters(4_000_000.0, 1_000_000.0, 400_000.0, 100_000.0)


def test_same_seed_same_values_other_seed_other_values() -> None:
    a, b, c = Profile(7), Profile(7), Profile(8)
    times = [d * DAY_S + h * H + 17.0 for d in range(3) for h in range(24)]
    assert [a.solar_w(t) for t in times] == [b.solar_w(t) for t in times]
    assert [a.load_w(t) for t in times] == [b.load_w(t) for t in times]
    assert [a.load_w(t) for t in times] != [c.load_w(t) for t in times]


def test_noise_is_uniform_and_independent_of_call_order() -> None:
    values = [uniform(3, 1, i) for i in range(5000)]
    assert all(0.0 <= v < 1.0 for v in values)
    assert statistics.mean(values) == pytest.approx(0.5, abs=0.02)
    assert uniform(3, 1, 4999) == values[-1]  # a hash, not a stream: asking again gives the same
    assert derive_seed(0, 1) != derive_seed(0, 2)


def test_solar_is_a_bell_between_sunrise_and_sunset() -> None:
    site = SiteProfile(peak_solar_w=4000.0, sunrise_h=6.0, sunset_h=18.0)
    p = Profile(1, site)
    for hour in (0.0, 3.0, 5.9, 18.1, 23.0):
        assert p.solar_w(hour * H) == 0.0
    clear = [p.clear_sky_w(h * H) for h in range(6, 19)]
    assert max(clear) == pytest.approx(4000.0)
    assert clear.index(max(clear)) == 6  # noon, halfway between sunrise and sunset
    assert p.clear_sky_w(9 * H) == pytest.approx(p.clear_sky_w(15 * H))  # symmetric
    assert p.clear_sky_w(8 * H) < p.clear_sky_w(10 * H) < p.clear_sky_w(12 * H)


def test_clouds_only_take_away_and_vary_within_a_day() -> None:
    site = SiteProfile(cloudiness_min=0.2, cloudiness_max=0.6)
    p = Profile(5, site)
    factors = [p.cloud_factor(10 * H + i * 60.0) for i in range(240)]
    assert all(0.4 - 1e-9 <= f <= 1.0 for f in factors)
    assert max(factors) - min(factors) > 0.05  # clouds drift past
    produced = [p.solar_w(12 * H + d * DAY_S) for d in range(20)]
    assert all(0 < w <= site.peak_solar_w for w in produced)
    assert len(set(produced)) == 20  # every day its own weather


def test_household_load_peaks_in_the_morning_and_evening() -> None:
    p = Profile(11)

    def mean_at(hour: float) -> float:
        return statistics.mean(p.load_w(d * DAY_S + hour * H + m * 60.0) for d in range(30) for m in range(20))

    night, morning, afternoon, evening = mean_at(3.0), mean_at(7.5), mean_at(15.0), mean_at(19.5)
    assert morning > 2 * night
    assert evening > 2 * afternoon
    assert evening > morning  # the evening peak is the day's largest
    assert night > 0


def test_site_profile_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="sunrise"):
        SiteProfile(sunrise_h=19.0, sunset_h=7.0)
    with pytest.raises(ValueError, match="cloudiness"):
        SiteProfile(cloudiness_min=0.8, cloudiness_max=0.2)


def _brute_force(profile: Profile, t0: float, t1: float) -> tuple[float, float]:
    """Import/export Wh between t0 and t1 by walking every step: an independent reference."""
    imp = exp = 0.0
    k = math.floor(t0 / STEP_S)
    t = t0
    while t < t1:
        end = min((k + 1) * STEP_S, t1)
        net = profile.load_w((k + 0.5) * STEP_S) - profile.solar_w((k + 0.5) * STEP_S)
        if net >= 0:
            imp += net * (end - t) / H
        else:
            exp += -net * (end - t) / H
        t = end
        k += 1
    return imp, exp


def test_counters_integrate_net_power_into_import_and_export() -> None:
    p = Profile(2)
    t0 = 9 * H + 3.7  # not on a step boundary
    integ = EnergyIntegrator(p, t0, START)
    t1 = t0 + 26 * H + 1.3
    got = integ.at(t1)
    imp, exp = _brute_force(p, t0, t1)
    assert got.import_wh - START.import_wh == pytest.approx(imp, rel=1e-9)
    assert got.export_wh - START.export_wh == pytest.approx(exp, rel=1e-9)
    # A whole day covers both directions: sunny hours export, evenings and nights import.
    assert imp > 1000 and exp > 1000
    assert got.import_varh > START.import_varh and got.export_varh > START.export_varh


def test_night_only_imports_and_sunny_noon_exports() -> None:
    p = Profile(4, SiteProfile(cloudiness_min=0.0, cloudiness_max=0.1))
    night = EnergyIntegrator(p, 1 * H, START)
    c = night.at(4 * H)
    assert c.export_wh == START.export_wh and c.import_wh > START.import_wh
    noon = EnergyIntegrator(p, 11 * H, START)
    c = noon.at(13 * H)
    assert c.export_wh - START.export_wh > 2000  # a clear noon with 4.2 kWp exports kWh
    assert c.import_wh - START.import_wh < 0.25 * (c.export_wh - START.export_wh)


def test_counters_do_not_depend_on_how_often_they_are_read() -> None:
    p = Profile(3)
    often = EnergyIntegrator(p, 10 * H, START)
    once = EnergyIntegrator(p, 10 * H, START)
    t = 10 * H
    for i in range(2000):
        t += 3.3 + (i % 7)  # irregular polling, partial steps everywhere
        often.at(t)
    assert often.at(t) == once.at(t)


def test_counters_are_monotonic_even_if_asked_about_the_past() -> None:
    integ = EnergyIntegrator(Profile(9), 6 * H, START)
    later = integ.at(12 * H)
    earlier = integ.at(8 * H)
    assert earlier == later  # time does not run backwards: the latest state is kept
    previous = later
    for i in range(1, 500):
        now = integ.at(12 * H + i * 37.0)
        assert now.import_wh >= previous.import_wh and now.export_wh >= previous.export_wh
        previous = now


def test_reset_drops_counters_to_zero_and_they_grow_again() -> None:
    integ = EnergyIntegrator(Profile(1), 10 * H, START)
    assert integ.at(11 * H).export_wh > START.export_wh
    integ.reset(11 * H)
    assert integ.at(11 * H) == Counters(0.0, 0.0, 0.0, 0.0)
    after = integ.at(13 * H)
    assert 0 < after.export_wh < 20_000 and after.import_wh >= 0


def test_negative_start_counters_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        EnergyIntegrator(Profile(), 0.0, Counters(-1.0, 0.0, 0.0, 0.0))
