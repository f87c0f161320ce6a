"""One simulated meter: a device register table, a power profile, energy counters that advance lazily
from the clock whenever something looks at them, and run-time fault switches."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from meter_sim.devices import DeviceSpec, build_spec
from meter_sim.errors import ConfigError, ModbusExceptionReply
from meter_sim.measurements import measure
from meter_sim.profiles import (
    SMALL_SITE,
    Counters,
    EnergyIntegrator,
    Profile,
    SiteProfile,
    derive_seed,
)
from meter_sim.quantities import Quantity
from meter_sim.registers import ILLEGAL_FUNCTION, decode_value, register_count

DEFAULT_START_IMPORT_KWH = 4821.37
DEFAULT_START_EXPORT_KWH = 2310.58
"""A few years' worth: large enough that float32 registers (24-bit mantissa) resolve only ~0.5 Wh."""
DEFAULT_START_HOUR = 10.0
"""Simulated local time at start: mid-morning, when the sun already outproduces the house."""
REACTIVE_SHARE = 0.12
"""Start kvarh counters at this share of the kWh counters."""


@dataclass
class Faults:
    """Run-time fault switches; tests flip them while a server is running.

    - ``no_response``: the meter ignores requests (as a dead or mis-addressed meter on RS-485).
    - ``exception_code``: every request gets this Modbus exception code (1..255) instead of data.
    - ``delay_s``: every answer is sent this much later (a slow meter).
    - ``corrupt``: answers are damaged on the wire (bad CRC on RTU, garbled PDU on TCP).
    - ``unsolicited``: after each answer the meter sends another frame nobody asked for (on TCP with a
      transaction id no request used; on RTU a second copy of the answer), as confused converters do.
    """

    no_response: bool = False
    exception_code: int | None = None
    delay_s: float = 0.0
    corrupt: bool = False
    unsolicited: bool = False

    def __setattr__(self, name: str, value: Any) -> None:
        # Validate on every flip, not only at construction: tests set these on a live meter.
        if name == "exception_code" and value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 255
        ):
            raise ConfigError(f"exception_code must be None or 1..255, not {value!r}")
        if name == "delay_s" and (
            isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf
        ):
            raise ConfigError(f"delay_s must be a finite number >= 0, not {value!r}")
        super().__setattr__(name, value)

    def clear(self) -> None:
        for f in fields(self):
            setattr(self, f.name, f.default)

    @property
    def any(self) -> bool:
        return (self.no_response or self.exception_code is not None or self.delay_s > 0 or self.corrupt
                or self.unsolicited)


class SimClock:
    """Simulated seconds since local midnight of day 0: ``start_s`` plus real elapsed time times
    ``speedup``. It can be paused so a test sees registers that hold still."""

    def __init__(self, speedup: float, start_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        _check_speedup(speedup)
        self._clock = clock
        self._speedup = float(speedup)
        self._anchor_real = clock()
        self._anchor_sim = float(start_s)
        self._paused = False

    def now(self) -> float:
        if self._paused:
            return self._anchor_sim
        return self._anchor_sim + (self._clock() - self._anchor_real) * self._speedup

    def _re_anchor(self) -> None:
        self._anchor_sim = self.now()
        self._anchor_real = self._clock()

    @property
    def speedup(self) -> float:
        return self._speedup

    @speedup.setter
    def speedup(self, value: float) -> None:
        _check_speedup(value)
        self._re_anchor()
        self._speedup = float(value)

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        if not self._paused:
            self._re_anchor()
            self._paused = True

    def resume(self) -> None:
        if self._paused:
            self._anchor_real = self._clock()
            self._paused = False


def _check_speedup(value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise ConfigError(f"speedup must be a finite number >= 0, not {value!r}")


class SimMeter:
    """A simulated meter answering register reads for one Modbus unit id.

    ``truth()`` returns what the headline registers encode right now, decoded exactly as a correct
    client decodes them (float32 kWh for SDM, acc32 Wh x 10**TotWh_SF for SunSpec 203), plus the
    unrounded values. ``last_truth`` is the same for the moment the last read was answered, which is
    what to compare with when the clock runs (speedup > 0) between a client's read and the check.
    """

    def __init__(
        self,
        model: str,
        unit: int,
        *,
        seed: int = 0,
        speedup: float = 1.0,
        sunspec_float: bool = False,
        start_import_kwh: float = DEFAULT_START_IMPORT_KWH,
        start_export_kwh: float = DEFAULT_START_EXPORT_KWH,
        start_hour: float = DEFAULT_START_HOUR,
        sunspec_energy_sf: int = 0,
        site: SiteProfile | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(unit, bool) or not isinstance(unit, int) or not 1 <= unit <= 247:
            raise ConfigError(f"{model} unit id must be 1..247, not {unit!r}")
        for name, value in (("start_import_kwh", start_import_kwh), ("start_export_kwh", start_export_kwh)):
            if not 0 <= value < math.inf:
                raise ConfigError(f"{model} unit {unit}: {name} must be a finite number >= 0, not {value!r}")
        if not 0 <= start_hour < 24 * 365:
            raise ConfigError(f"{model} unit {unit}: start_hour must be in 0..8760, not {start_hour!r}")
        self.spec: DeviceSpec = build_spec(
            model, unit, sunspec_float=sunspec_float, sunspec_energy_sf=sunspec_energy_sf
        )
        self.model = model
        self.unit = unit
        self.seed = seed
        self.faults = Faults()
        if site is None:
            site = SMALL_SITE if self.spec.phases == 1 else SiteProfile()
        # Mix the unit id into the seed so meters sharing a command-line seed do not move in lockstep.
        self.profile = Profile(derive_seed(seed, unit), site)
        self.clock = SimClock(speedup, start_hour * 3600.0, clock)
        imp_wh, exp_wh = start_import_kwh * 1000.0, start_export_kwh * 1000.0
        self._energy = EnergyIntegrator(
            self.profile,
            self.clock.now(),
            Counters(imp_wh, exp_wh, imp_wh * REACTIVE_SHARE, exp_wh * REACTIVE_SHARE),
        )
        self._last_truth: dict[str, float] | None = None

    def __repr__(self) -> str:
        return f"SimMeter({self.model!r}, unit={self.unit}, seed={self.seed}, speedup={self.clock.speedup})"

    @property
    def speedup(self) -> float:
        return self.clock.speedup

    @property
    def max_abs_power_w(self) -> float:
        """The most net power (import or export) this meter's site profile can show."""
        return self.profile.site.max_abs_net_w

    def pause(self) -> None:
        """Hold the simulated clock: counters and power stay put until :meth:`resume`."""
        self.clock.pause()

    def resume(self) -> None:
        self.clock.resume()

    def counters(self) -> Counters:
        return self._energy.at(self.clock.now())

    def measurements(self) -> dict[Quantity, float]:
        """Every quantity at the current simulated time (advances the counters)."""
        return self._snapshot()[1]

    def _snapshot(self) -> tuple[float, dict[Quantity, float]]:
        t = self.clock.now()
        counters = self._energy.at(t)
        return t, measure(self.profile.sample(t), counters, self.spec.phases)

    def reset_counters(self) -> None:
        """Counter-reset fault: every energy counter reads 0 from now on and grows again from there."""
        self._energy.reset(self.clock.now())

    def read_registers(self, function_code: int, address: int, count: int) -> list[int]:
        """Answer a read (function code 03 or 04), or raise :class:`ModbusExceptionReply`."""
        register_map = self.spec.maps.get(function_code)
        if register_map is None:
            raise ModbusExceptionReply(
                ILLEGAL_FUNCTION, f"{self.model} unit {self.unit} does not serve function code {function_code}"
            )
        t, values = self._snapshot()
        words = register_map.read(address, count, values)
        self._last_truth = self._truth_from(t, values)
        return words

    def truth(self) -> dict[str, float]:
        """Headline values the registers encode now. Keys: ``import_kwh``, ``export_kwh``,
        ``import_wh``, ``export_wh``, ``power_w`` (as decoded from the registers), the same with an
        ``_exact`` suffix (unrounded), ``sim_time_s``, and for SunSpec with ``sunspec_float`` also
        ``m213_import_kwh`` / ``m213_export_kwh`` / ``m213_import_wh`` / ``m213_export_wh`` / ``m213_power_w``."""
        return self._truth_from(*self._snapshot())

    @property
    def last_truth(self) -> dict[str, float] | None:
        """:meth:`truth` as of the last answered read, or None before the first."""
        return None if self._last_truth is None else dict(self._last_truth)

    def _truth_from(self, t: float, values: dict[Quantity, float]) -> dict[str, float]:
        out: dict[str, float] = {
            "sim_time_s": t,
            "import_wh_exact": values[Quantity.IMPORT_WH],
            "export_wh_exact": values[Quantity.EXPORT_WH],
            "import_kwh_exact": values[Quantity.IMPORT_WH] / 1000.0,
            "export_kwh_exact": values[Quantity.EXPORT_WH] / 1000.0,
            "power_w_exact": values[Quantity.P_TOTAL],
        }
        for key, r in self.spec.readouts.items():
            words = self.spec.maps[r.function_code].read(r.address, register_count(r.kind), values)
            value = decode_value(r.kind, words, r.scale)
            if r.unit == "kWh":
                out[f"{key}_kwh"] = value
                out[f"{key}_wh"] = value * 1000.0
            elif r.unit == "Wh":
                out[f"{key}_wh"] = value
                out[f"{key}_kwh"] = value / 1000.0
            else:
                out[f"{key}_w"] = value
        return out
