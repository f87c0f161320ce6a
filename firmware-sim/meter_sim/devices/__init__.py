"""Device register tables, one module per family, and the registry that maps model keys to them."""

from __future__ import annotations

from collections.abc import Callable

from meter_sim.devices import sdm, sunspec
from meter_sim.devices.spec import DeviceSpec, Readout
from meter_sim.errors import ConfigError

__all__ = ["MODELS", "DeviceSpec", "Readout", "build_spec"]


def _sunspec(unit: int, sunspec_float: bool, sunspec_energy_sf: int) -> DeviceSpec:
    return sunspec.sunspec(unit, float_model=sunspec_float, energy_sf=sunspec_energy_sf)


def _sdm630(unit: int, sunspec_float: bool, sunspec_energy_sf: int) -> DeviceSpec:
    return sdm.sdm630(unit)


def _sdm120(unit: int, sunspec_float: bool, sunspec_energy_sf: int) -> DeviceSpec:
    return sdm.sdm120(unit)


_Builder = Callable[[int, bool, int], DeviceSpec]
MODELS: dict[str, _Builder] = {}


def _register(name: str, builder: _Builder) -> None:
    if name in MODELS:
        raise ConfigError(f"meter model {name!r} registered twice")
    MODELS[name] = builder


_register("sdm120", _sdm120)
_register("sdm630", _sdm630)
_register("sunspec", _sunspec)


def build_spec(model: str, unit: int, *, sunspec_float: bool = False, sunspec_energy_sf: int = 0) -> DeviceSpec:
    try:
        builder = MODELS[model]
    except KeyError:
        raise ConfigError(f"unknown meter model {model!r}; choose one of {', '.join(sorted(MODELS))}") from None
    return builder(unit, sunspec_float, sunspec_energy_sf)
