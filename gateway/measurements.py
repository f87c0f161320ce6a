"""The one measurement vocabulary every register table maps into.

Downstream code (the sample, the status page, MQTT, SQLite) sees these names, never register numbers
or meter-specific units: tables scale raw values into the unit given here (kWh registers become Wh).
"""

from __future__ import annotations

import enum

__all__ = ["ENERGY_COUNTERS", "Measurement"]


class Measurement(enum.Enum):
    """A physical quantity: ``.value`` is the stable name, ``.unit`` and ``.description`` document it.

    Sign convention for power: positive means import from the grid, negative export.
    """

    unit: str
    description: str

    def __new__(cls, name: str, unit: str, description: str) -> Measurement:
        member = object.__new__(cls)
        member._value_ = name
        member.unit = unit
        member.description = description
        return member

    @classmethod
    def by_name(cls, name: str) -> Measurement:
        """The member whose stable name is ``name`` (KeyError if none)."""
        member = cls._value2member_map_[name]
        assert isinstance(member, cls)
        return member

    VOLTAGE_L1 = ("voltage_l1", "V", "phase L1 to neutral voltage")
    VOLTAGE_L2 = ("voltage_l2", "V", "phase L2 to neutral voltage")
    VOLTAGE_L3 = ("voltage_l3", "V", "phase L3 to neutral voltage")
    VOLTAGE_AVG = ("voltage_avg", "V", "average phase to neutral voltage")
    CURRENT_TOTAL = ("current_total", "A", "sum of phase currents")
    CURRENT_L1 = ("current_l1", "A", "phase L1 current")
    CURRENT_L2 = ("current_l2", "A", "phase L2 current")
    CURRENT_L3 = ("current_l3", "A", "phase L3 current")
    POWER_TOTAL = ("power_total", "W", "total active power, + import / - export")
    POWER_L1 = ("power_l1", "W", "phase L1 active power")
    POWER_L2 = ("power_l2", "W", "phase L2 active power")
    POWER_L3 = ("power_l3", "W", "phase L3 active power")
    APPARENT_POWER_TOTAL = ("apparent_power_total", "VA", "total apparent power")
    APPARENT_POWER_L1 = ("apparent_power_l1", "VA", "phase L1 apparent power")
    APPARENT_POWER_L2 = ("apparent_power_l2", "VA", "phase L2 apparent power")
    APPARENT_POWER_L3 = ("apparent_power_l3", "VA", "phase L3 apparent power")
    REACTIVE_POWER_TOTAL = ("reactive_power_total", "var", "total reactive power")
    REACTIVE_POWER_L1 = ("reactive_power_l1", "var", "phase L1 reactive power")
    REACTIVE_POWER_L2 = ("reactive_power_l2", "var", "phase L2 reactive power")
    REACTIVE_POWER_L3 = ("reactive_power_l3", "var", "phase L3 reactive power")
    POWER_FACTOR = ("power_factor", "", "total power factor, -1..1")
    POWER_FACTOR_L1 = ("power_factor_l1", "", "phase L1 power factor, -1..1")
    POWER_FACTOR_L2 = ("power_factor_l2", "", "phase L2 power factor, -1..1")
    POWER_FACTOR_L3 = ("power_factor_l3", "", "phase L3 power factor, -1..1")
    PHASE_ANGLE = ("phase_angle", "deg", "total phase angle")
    FREQUENCY = ("frequency", "Hz", "line frequency")
    IMPORT_ENERGY = ("import_energy", "Wh", "cumulative active energy imported from the grid")
    EXPORT_ENERGY = ("export_energy", "Wh", "cumulative active energy exported to the grid")
    TOTAL_ENERGY = ("total_energy", "Wh", "cumulative active energy, import plus export")
    IMPORT_ENERGY_L1 = ("import_energy_l1", "Wh", "phase L1 imported active energy")
    IMPORT_ENERGY_L2 = ("import_energy_l2", "Wh", "phase L2 imported active energy")
    IMPORT_ENERGY_L3 = ("import_energy_l3", "Wh", "phase L3 imported active energy")
    EXPORT_ENERGY_L1 = ("export_energy_l1", "Wh", "phase L1 exported active energy")
    EXPORT_ENERGY_L2 = ("export_energy_l2", "Wh", "phase L2 exported active energy")
    EXPORT_ENERGY_L3 = ("export_energy_l3", "Wh", "phase L3 exported active energy")
    TOTAL_ENERGY_L1 = ("total_energy_l1", "Wh", "phase L1 total active energy")
    TOTAL_ENERGY_L2 = ("total_energy_l2", "Wh", "phase L2 total active energy")
    TOTAL_ENERGY_L3 = ("total_energy_l3", "Wh", "phase L3 total active energy")
    IMPORT_REACTIVE_ENERGY = ("import_reactive_energy", "varh", "cumulative imported reactive energy")
    EXPORT_REACTIVE_ENERGY = ("export_reactive_energy", "varh", "cumulative exported reactive energy")
    TOTAL_REACTIVE_ENERGY = ("total_reactive_energy", "varh", "cumulative reactive energy")
    THD_VOLTAGE_L1 = ("thd_voltage_l1", "%", "phase L1 voltage total harmonic distortion")
    THD_VOLTAGE_L2 = ("thd_voltage_l2", "%", "phase L2 voltage total harmonic distortion")
    THD_VOLTAGE_L3 = ("thd_voltage_l3", "%", "phase L3 voltage total harmonic distortion")
    THD_VOLTAGE_AVG = ("thd_voltage_avg", "%", "average voltage total harmonic distortion")


# Cumulative counters: these may never be negative and never go backwards on a healthy meter.
ENERGY_COUNTERS: frozenset[Measurement] = frozenset(
    m for m in Measurement if m.unit in ("Wh", "varh")
)
