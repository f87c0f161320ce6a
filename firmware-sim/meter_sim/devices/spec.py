"""What a device module provides: its register maps by function code and where the values a test
compares against (energy, power) live in them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from meter_sim.registers import Kind, RegisterMap, RegisterSpace


@dataclass(frozen=True)
class Readout:
    """How a client decodes one headline value from this device: read ``kind`` at ``address`` with
    ``function_code`` and multiply by ``10**scale`` to get ``unit``."""

    function_code: int
    address: int
    kind: Kind
    scale: int
    unit: str


@dataclass(frozen=True)
class DeviceSpec:
    model: str
    description: str
    datasheet: str
    phases: int
    maps: Mapping[int, RegisterMap | RegisterSpace]
    readouts: Mapping[str, Readout]
    """Keys such as ``import``, ``export`` and ``power`` (SunSpec float variant: ``m213_import`` ...)."""
