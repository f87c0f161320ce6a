"""Where a simulated meter's power comes from: a seeded solar bell curve with cloud noise, a household
load with morning and evening peaks, and the energy counters that integrate their difference.

Simulated time ``t`` is seconds since local midnight of day 0. Power is piecewise constant on a grid of
``STEP_S`` simulated seconds, each step sampled at its midpoint, so the integral is exact and the counters
at time ``t`` are the same however often (or rarely) they were read. All randomness is a hash of
(seed, stream, index): nothing depends on call order, so two runs with one seed agree exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

STEP_S = 10.0
"""Simulated seconds per power step."""

DAY_S = 86_400.0
_MASK64 = (1 << 64) - 1

# Hash streams: one per kind of noise so that changing one never shifts another.
_CLOUD_DAY, _CLOUD, _LOAD, _APPLIANCE, _PF, _GRID = range(1, 7)


def _mix64(x: int) -> int:
    """SplitMix64 finaliser: a well-distributed 64-bit hash."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def derive_seed(seed: int, salt: int) -> int:
    """A new seed for a sub-stream (e.g. one meter of several sharing a command-line seed)."""
    return _mix64(_mix64(seed & _MASK64) ^ (salt & _MASK64))


def _stream_key(seed: int, stream: int) -> int:
    return _mix64((seed & _MASK64) ^ (stream * 0xD6E8FEB86659FD93 & _MASK64))


def uniform(seed: int, stream: int, index: int) -> float:
    """A deterministic number in [0, 1) for (seed, stream, index)."""
    return _uniform_keyed(_stream_key(seed, stream), index)


def _uniform_keyed(key: int, index: int) -> float:
    return (_mix64(key ^ (index & _MASK64)) >> 11) / float(1 << 53)


def _bump(hour: float, centre: float, width: float) -> float:
    return math.exp(-0.5 * ((hour - centre) / width) ** 2)


@dataclass(frozen=True)
class SiteProfile:
    """A household with rooftop PV. Defaults: a 4.2 kWp system and a typical family's load."""

    peak_solar_w: float = 4200.0
    sunrise_h: float = 6.0
    sunset_h: float = 18.5
    cloudiness_min: float = 0.05
    """Least fraction of the clear-sky output a day's clouds can take away at their thickest."""
    cloudiness_max: float = 0.75
    base_load_w: float = 280.0
    morning_peak_w: float = 1400.0
    morning_peak_h: float = 7.5
    morning_width_h: float = 1.0
    midday_load_w: float = 250.0
    evening_peak_w: float = 2200.0
    evening_peak_h: float = 19.5
    evening_width_h: float = 1.5
    appliance_w: float = 2000.0
    """A kettle, oven or washing machine heating up: switched on for a few minutes now and then."""
    appliance_probability: float = 0.04
    load_jitter: float = 0.15

    def __post_init__(self) -> None:
        if not 0.0 <= self.sunrise_h < self.sunset_h <= 24.0:
            raise ValueError(f"sunrise {self.sunrise_h} h must come before sunset {self.sunset_h} h")
        if min(self.peak_solar_w, self.base_load_w) < 0:
            raise ValueError("peak solar and base load must not be negative")
        if not 0.0 <= self.cloudiness_min <= self.cloudiness_max <= 1.0:
            raise ValueError("cloudiness must satisfy 0 <= min <= max <= 1")

    @property
    def max_abs_net_w(self) -> float:
        """An upper bound on |load - solar|: every load bump at its peak with full jitter and an appliance
        on, or full sun with no load."""
        peak_load = (self.base_load_w + self.morning_peak_w + self.midday_load_w + self.evening_peak_w) * (
            1.0 + self.load_jitter
        ) + self.appliance_w
        return max(peak_load, self.peak_solar_w)


SMALL_SITE = SiteProfile(
    peak_solar_w=2500.0,
    base_load_w=180.0,
    morning_peak_w=900.0,
    midday_load_w=150.0,
    evening_peak_w=1500.0,
    appliance_w=1800.0,
)
"""A flat with a balcony-sized array; what a single-phase SDM120 typically meters."""


@dataclass(frozen=True)
class PowerSample:
    """What flows at one instant. ``net_w`` > 0 means the site imports from the grid."""

    solar_w: float
    load_w: float
    power_factor: float
    grid_noise: float
    """A number in [0, 1) for the grid-side values (voltage, frequency) of this step."""

    @property
    def net_w(self) -> float:
        return self.load_w - self.solar_w

    @property
    def reactive_var(self) -> float:
        """Reactive power magnitude that goes with ``|net_w|`` at this power factor."""
        return abs(self.net_w) * math.tan(math.acos(self.power_factor))


class Profile:
    """Deterministic solar production and household consumption for one seed."""

    def __init__(self, seed: int = 0, site: SiteProfile | None = None) -> None:
        self.seed = seed
        self.site = site if site is not None else SiteProfile()
        self._keys = {stream: _stream_key(seed, stream) for stream in range(1, 7)}
        # Consecutive steps share their minute, cloud knot and day; remembering the last hash per
        # stream makes integration several times cheaper without changing any value.
        self._memo: dict[int, tuple[int, float]] = {}

    def _noise(self, stream: int, index: int, slot: int = 0) -> float:
        memo_key = stream + 100 * slot
        hit = self._memo.get(memo_key)
        if hit is not None and hit[0] == index:
            return hit[1]
        value = _uniform_keyed(self._keys[stream], index)
        self._memo[memo_key] = (index, value)
        return value

    def _smooth(self, stream: int, u: float) -> float:
        """Value noise in [0, 1): hashed knots at integer u, smoothstep between them."""
        k = math.floor(u)
        f = u - k
        s = f * f * (3.0 - 2.0 * f)
        a = self._noise(stream, k)
        return a + (self._noise(stream, k + 1, slot=1) - a) * s

    def clear_sky_w(self, t: float) -> float:
        site = self.site
        hour = (t % DAY_S) / 3600.0
        if not site.sunrise_h < hour < site.sunset_h:
            return 0.0
        x = (hour - site.sunrise_h) / (site.sunset_h - site.sunrise_h)
        return float(site.peak_solar_w * math.sin(math.pi * x) ** 1.5)

    def cloud_factor(self, t: float) -> float:
        """Fraction of clear-sky output that gets through: each day has its own cloudiness, and clouds
        drift past on a scale of a few minutes."""
        site = self.site
        day = math.floor(t / DAY_S)
        cloudiness = site.cloudiness_min + (site.cloudiness_max - site.cloudiness_min) * self._noise(_CLOUD_DAY, day)
        # Squaring the noise gives long clear spells with occasional deep dips, as passing clouds do.
        return 1.0 - cloudiness * self._smooth(_CLOUD, t / 300.0) ** 2

    def solar_w(self, t: float) -> float:
        clear = self.clear_sky_w(t)
        return clear * self.cloud_factor(t) if clear > 0.0 else 0.0

    def load_w(self, t: float) -> float:
        site = self.site
        hour = (t % DAY_S) / 3600.0
        shape = (
            site.base_load_w
            + site.morning_peak_w * _bump(hour, site.morning_peak_h, site.morning_width_h)
            + site.midday_load_w * _bump(hour, 12.5, 1.5)
            + site.evening_peak_w * _bump(hour, site.evening_peak_h, site.evening_width_h)
        )
        jitter = 1.0 + site.load_jitter * (2.0 * self._noise(_LOAD, math.floor(t / 60.0)) - 1.0)
        appliance = (
            site.appliance_w
            if self._noise(_APPLIANCE, math.floor(t / 180.0)) < site.appliance_probability
            else 0.0
        )
        return shape * jitter + appliance

    def power_factor(self, t: float) -> float:
        return 0.95 + 0.04 * self._noise(_PF, math.floor(t / 60.0))

    def step_sample(self, k: int) -> PowerSample:
        """The constant power of step ``k`` (simulated time [k*STEP_S, (k+1)*STEP_S))."""
        t = (k + 0.5) * STEP_S
        return PowerSample(
            solar_w=self.solar_w(t),
            load_w=self.load_w(t),
            power_factor=self.power_factor(t),
            grid_noise=_uniform_keyed(self._keys[_GRID], k),
        )

    def step_flows(self, k: int) -> tuple[float, float]:
        """(net W, reactive var magnitude) of step ``k``: what the counters integrate. The same numbers
        as :meth:`step_sample` gives, without the grid-side noise the counters do not need."""
        t = (k + 0.5) * STEP_S
        net = self.load_w(t) - self.solar_w(t)
        return net, abs(net) * math.tan(math.acos(self.power_factor(t)))

    def sample(self, t: float) -> PowerSample:
        return self.step_sample(math.floor(t / STEP_S))


@dataclass(frozen=True)
class Counters:
    """Cumulative energy registers, in Wh and varh, never negative."""

    import_wh: float
    export_wh: float
    import_varh: float
    export_varh: float


@dataclass
class _Acc:
    import_wh: float = 0.0
    export_wh: float = 0.0
    import_varh: float = 0.0
    export_varh: float = 0.0

    def add(self, flows: tuple[float, float], seconds: float) -> None:
        hours = seconds / 3600.0
        net, var = flows
        if net >= 0.0:
            self.import_wh += net * hours
            self.import_varh += var * hours
        else:
            self.export_wh += -net * hours
            self.export_varh += var * hours

    def copy(self) -> _Acc:
        return _Acc(self.import_wh, self.export_wh, self.import_varh, self.export_varh)


@dataclass
class EnergyIntegrator:
    """Integrates a profile's net power from ``t0`` on: import when the load exceeds solar, export when
    solar exceeds the load. Full steps are summed once, in time order; the current partial step is added
    on top without being stored, which keeps the result independent of the reading pattern."""

    profile: Profile
    t0: float
    start: Counters
    _k: int = field(init=False)
    _acc: _Acc = field(init=False, default_factory=_Acc)
    _zero: Counters | None = field(init=False, default=None)
    _last_t: float = field(init=False)

    def __post_init__(self) -> None:
        if min(self.start.import_wh, self.start.export_wh, self.start.import_varh, self.start.export_varh) < 0:
            raise ValueError("start counters must not be negative")
        k0 = math.floor(self.t0 / STEP_S)
        self._k = k0 + 1
        self._acc.add(self.profile.step_flows(k0), self._k * STEP_S - self.t0)
        self._last_t = self.t0

    def _integral(self, t: float) -> _Acc:
        k0 = math.floor(self.t0 / STEP_S)
        if t < (k0 + 1) * STEP_S:
            # Still inside the first step, whose stored share runs all the way to its end.
            acc = _Acc()
            acc.add(self.profile.step_flows(k0), t - self.t0)
            return acc
        k_now = math.floor(t / STEP_S)
        while self._k < k_now:
            self._acc.add(self.profile.step_flows(self._k), STEP_S)
            self._k += 1
        acc = self._acc.copy()
        acc.add(self.profile.step_flows(self._k), t - self._k * STEP_S)
        return acc

    def _raw(self, t: float) -> Counters:
        acc = self._integral(t)
        return Counters(
            import_wh=self.start.import_wh + acc.import_wh,
            export_wh=self.start.export_wh + acc.export_wh,
            import_varh=self.start.import_varh + acc.import_varh,
            export_varh=self.start.export_varh + acc.export_varh,
        )

    def at(self, t: float) -> Counters:
        """Counters at simulated time ``t``. Time never runs backwards here: an earlier ``t`` than one
        already seen is read as the latest, so counters are monotonic."""
        t = max(t, self._last_t)
        self._last_t = t
        raw = self._raw(t)
        if self._zero is None:
            return raw
        z = self._zero
        return Counters(
            import_wh=raw.import_wh - z.import_wh,
            export_wh=raw.export_wh - z.export_wh,
            import_varh=raw.import_varh - z.import_varh,
            export_varh=raw.export_varh - z.export_varh,
        )

    def reset(self, t: float) -> None:
        """Counter-reset fault (a meter replaced or its memory wiped): all counters read 0 at ``t``."""
        t = max(t, self._last_t)
        self._last_t = t
        self._zero = self._raw(t)
