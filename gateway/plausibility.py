"""Values outside physics are flagged, never forwarded as good data.

Checked per sample:

* any measurement that is NaN or infinite;
* an energy counter below zero;
* import / export energy going backwards versus the last good sample;
* import / export energy rising faster than the meter's rated power allows (plus float32 resolution);
* total power beyond the rating.

A flagged sample still travels (``meter_error=True`` with its ``problems``) so nothing is hidden, but it
never moves the baseline.  When a meter's counter was really reset or replaced, every later sample
would be "backwards" forever; so after ``rebaseline_after`` consecutive flagged samples that are
consistent with each other (monotonic, plausible increments), the newest becomes the baseline and the
checker says so in its problems (the operator sees it; the backend decides what to mint).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from gateway.decode import to_wh
from gateway.measurements import ENERGY_COUNTERS, Measurement

__all__ = ["Counters", "PlausibilityChecker", "Verdict"]

_I32_MAX = (1 << 31) - 1
_COUNTERS = (Measurement.IMPORT_ENERGY, Measurement.EXPORT_ENERGY)
_ENERGY_NAMES = frozenset(m.value for m in ENERGY_COUNTERS)
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Counters:
    import_wh: int
    export_wh: int
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class Verdict:
    """What goes into the sample.  When a counter is unusable (NaN, negative) the last good value (or 0)
    stands in for it; ``problems`` is empty exactly when the sample is good."""

    import_wh: int
    export_wh: int
    power_w: int | None
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def float32_step_wh(wh: int) -> float:
    """The spacing of float32 kWh values around ``wh`` Wh, in Wh (the register's resolution)."""
    kwh = abs(wh) / 1000
    if kwh == 0:
        return 0.0
    _, exponent = math.frexp(kwh)  # kwh = m * 2**exponent with 0.5 <= m < 1
    return 1000 * 2.0 ** (exponent - 24)


class PlausibilityChecker:
    """Stateful per meter.  ``rated_power_w`` bounds power and energy increments (x ``margin``)."""

    def __init__(self, *, rated_power_w: int, margin: float = 1.5, rebaseline_after: int = 3) -> None:
        self.rated_power_w = rated_power_w
        self.margin = margin
        self.rebaseline_after = rebaseline_after
        self._power_limit = Decimal(rated_power_w * margin)
        self.last_good: Counters | None = None
        self._candidate: Counters | None = None
        self._streak = 0

    def _max_increase_wh(self, earlier: Counters, later_ms: int, value_wh: int) -> float:
        hours = max(later_ms - earlier.timestamp_ms, 0) / 3_600_000
        return self.rated_power_w * self.margin * hours + 2 * float32_step_wh(value_wh) + 1

    def _relative_problems(self, earlier: Counters, current: Counters) -> list[str]:
        problems = []
        for name, before, now in (
            ("import_energy", earlier.import_wh, current.import_wh),
            ("export_energy", earlier.export_wh, current.export_wh),
        ):
            if now < before:
                problems.append(f"{name} went backwards: {before} Wh -> {now} Wh")
            elif now - before > self._max_increase_wh(earlier, current.timestamp_ms, now):
                seconds = (current.timestamp_ms - earlier.timestamp_ms) / 1000
                problems.append(
                    f"{name} jumped by {now - before} Wh in {seconds:.1f} s, "
                    f"more than {self.rated_power_w} W could deliver"
                )
        return problems

    def check(self, values: Mapping[Measurement, Decimal], timestamp_ms: int) -> Verdict:
        """Check exact decoded values (see :func:`gateway.decode.decode_table`)."""
        absolute: list[str] = []
        for m, v in values.items():
            if v.is_nan():
                absolute.append(f"{m.value} is NaN")
            elif v.is_infinite():
                absolute.append(f"{m.value} is infinite")
            elif m in ENERGY_COUNTERS and v < 0:
                absolute.append(f"{m.value} is negative ({v:f})")
        return self._judge(absolute, values, timestamp_ms)

    def check_decoded(
        self, values: Mapping[str, float], exact: Mapping[Measurement, Decimal], timestamp_ms: int
    ) -> Verdict:
        """The same check on :class:`gateway.decode.TableDecoder` output: every value as a float by
        name, and the exact Decimals of the counters and total power."""
        absolute: list[str] = []
        for name, v in values.items():
            if v - v != 0:  # NaN or infinite (inf - inf is NaN), in one comparison
                absolute.append(f"{name} is NaN" if v != v else f"{name} is infinite")
            elif v < 0 and name in _ENERGY_NAMES:
                exact_value = exact.get(Measurement.by_name(name))
                absolute.append(f"{name} is negative ({exact_value if exact_value is not None else v:f})")
        return self._judge(absolute, exact, timestamp_ms)

    def _judge(self, absolute: list[str], values: Mapping[Measurement, Decimal], timestamp_ms: int) -> Verdict:
        fallback = self.last_good
        counters: dict[Measurement, int] = {}
        for m in _COUNTERS:
            v = values.get(m, _ZERO)  # absent (e.g. SunSpec acc32 0): nothing counted yet
            if v.is_finite() and v >= 0:
                counters[m] = to_wh(v)
            elif fallback is not None:
                counters[m] = fallback.import_wh if m is Measurement.IMPORT_ENERGY else fallback.export_wh
            else:
                counters[m] = 0
        current = Counters(counters[Measurement.IMPORT_ENERGY], counters[Measurement.EXPORT_ENERGY], timestamp_ms)

        power_w = None
        power = values.get(Measurement.POWER_TOTAL)
        if power is not None and power.is_finite():
            if abs(power) > self._power_limit:
                absolute.append(f"power_total {power:.0f} W is beyond the meter's {self.rated_power_w} W rating")
            else:
                power_w = int(power.to_integral_value(rounding=ROUND_HALF_EVEN))
                power_w = max(-_I32_MAX, min(_I32_MAX, power_w))

        relative = self._relative_problems(self.last_good, current) if self.last_good else []
        problems = absolute + relative
        if not problems:
            self.last_good = current
            self._candidate, self._streak = None, 0
        elif relative and not absolute:
            problems += self._maybe_rebaseline(current)
        return Verdict(current.import_wh, current.export_wh, power_w, tuple(problems))

    def _maybe_rebaseline(self, current: Counters) -> list[str]:
        if self._candidate is not None and not self._relative_problems(self._candidate, current):
            self._streak += 1
        else:
            self._streak = 1
        self._candidate = current
        if self._streak >= self.rebaseline_after:
            self.last_good = current
            self._candidate, self._streak = None, 0
            return [f"counters accepted as new baseline after {self.rebaseline_after} consistent samples"]
        return []
