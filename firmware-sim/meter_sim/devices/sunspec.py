"""A SunSpec meter (holding registers, function code 03).

Layout from base 40000: the "SunS" marker, common model 1 (length 66), meter model 203 (wye-connected
three-phase, int16 values with sunssf scale factors, acc32 Wh counters), optionally model 213 (the same
meter in float32), then the end marker (id 0xFFFF, length 0). Every block is written as the SunSpec model
definition lists its points (name, type, size), so offsets follow from the table and each model's length
is checked against the specification.

Sign convention: W is positive while importing from the grid. Points the simulator has no value for
carry SunSpec's "not implemented" markers (int16 0x8000, acc32 0, sunssf 0x8000, float32 NaN).

Source: SunSpec Information Model Reference (models 1, 203, 213), github.com/sunspec/models json/.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from meter_sim.devices.spec import DeviceSpec, Readout
from meter_sim.errors import ConfigError
from meter_sim.quantities import Quantity as Q
from meter_sim.registers import Kind, Point, RegisterMap

BASE = 40000
MARKER = (0x5375, 0x6E53)  # "SunS"
END_ID = 0xFFFF

MANUFACTURER = "GridTokenX"
DATASHEET = "https://github.com/sunspec/models"


@dataclass(frozen=True)
class Field:
    """One SunSpec point: ``source`` is a measurement, a constant, or None for not implemented;
    ``sf`` names the scale-factor point that applies."""

    name: str
    kind: Kind
    source: Q | float | int | str | None = None
    sf: str | None = None
    size: int = 0


def _s(name: str, text: str, size: int) -> Field:
    return Field(name, Kind.STRING, text, size=size)


def _phase(prefix: str, kind: Kind, sf: str, total: Q | None, a: Q | None, b: Q | None, c: Q | None,
           suffix: tuple[str, str, str] = ("phA", "phB", "phC"), phase_prefix: str | None = None) -> list[Field]:
    """A total and its three phase points, named as in the model definition (e.g. W, WphA, WphB, WphC)."""
    names = [prefix, *((phase_prefix or prefix) + s for s in suffix)]
    return [Field(n, kind, q, sf) for n, q in zip(names, (total, a, b, c), strict=True)]


def model_1(model: str, version: str, serial: str, device_address: int) -> tuple[int, list[Field]]:
    return 1, [
        _s("Mn", MANUFACTURER, 16),
        _s("Md", model, 16),
        _s("Opt", "", 8),
        _s("Vr", version, 8),
        _s("SN", serial, 16),
        Field("DA", Kind.UINT16, device_address),
        Field("Pad", Kind.INT16, None),
    ]


def model_203(sf: dict[str, int]) -> tuple[int, list[Field]]:
    acc = Kind.ACC32
    fields = [
        *_phase("A", Kind.INT16, "A_SF", Q.I_SUM, Q.I_L1, Q.I_L2, Q.I_L3, ("phA", "phB", "phC")),
        Field("A_SF", Kind.SUNSSF, sf["A_SF"]),
        *_phase("PhV", Kind.INT16, "V_SF", Q.V_LN_AVG, Q.V_L1, Q.V_L2, Q.V_L3),
        *_phase("PPV", Kind.INT16, "V_SF", Q.V_LL_AVG, Q.V_L12, Q.V_L23, Q.V_L31, ("phAB", "phBC", "phCA"),
                phase_prefix="PhV"),
        Field("V_SF", Kind.SUNSSF, sf["V_SF"]),
        Field("Hz", Kind.INT16, Q.FREQUENCY, "Hz_SF"),
        Field("Hz_SF", Kind.SUNSSF, sf["Hz_SF"]),
        *_phase("W", Kind.INT16, "W_SF", Q.P_TOTAL, Q.P_L1, Q.P_L2, Q.P_L3),
        Field("W_SF", Kind.SUNSSF, sf["W_SF"]),
        *_phase("VA", Kind.INT16, "VA_SF", Q.S_TOTAL, Q.S_L1, Q.S_L2, Q.S_L3),
        Field("VA_SF", Kind.SUNSSF, sf["VA_SF"]),
        *_phase("VAR", Kind.INT16, "VAR_SF", Q.Q_TOTAL, Q.Q_L1, Q.Q_L2, Q.Q_L3),
        Field("VAR_SF", Kind.SUNSSF, sf["VAR_SF"]),
        *_phase("PF", Kind.INT16, "PF_SF", Q.PF_TOTAL, Q.PF_L1, Q.PF_L2, Q.PF_L3),
        Field("PF_SF", Kind.SUNSSF, sf["PF_SF"]),
        *_phase("TotWhExp", acc, "TotWh_SF", Q.EXPORT_WH, Q.EXPORT_WH_L1, Q.EXPORT_WH_L2, Q.EXPORT_WH_L3,
                ("PhA", "PhB", "PhC")),
        *_phase("TotWhImp", acc, "TotWh_SF", Q.IMPORT_WH, Q.IMPORT_WH_L1, Q.IMPORT_WH_L2, Q.IMPORT_WH_L3,
                ("PhA", "PhB", "PhC")),
        Field("TotWh_SF", Kind.SUNSSF, sf["TotWh_SF"]),
        # Apparent and per-quadrant reactive energy are not metered by this simulator.
        *_phase("TotVAhExp", acc, "TotVAh_SF", None, None, None, None, ("PhA", "PhB", "PhC")),
        *_phase("TotVAhImp", acc, "TotVAh_SF", None, None, None, None, ("PhA", "PhB", "PhC")),
        Field("TotVAh_SF", Kind.SUNSSF, None),
        *_phase("TotVArhImpQ1", acc, "TotVArh_SF", None, None, None, None, ("PhA", "PhB", "PhC")),
        *_phase("TotVArhImpQ2", acc, "TotVArh_SF", None, None, None, None, ("PhA", "PhB", "PhC")),
        *_phase("TotVArhExpQ3", acc, "TotVArh_SF", None, None, None, None, ("PhA", "PhB", "PhC")),
        *_phase("TotVArhExpQ4", acc, "TotVArh_SF", None, None, None, None, ("PhA", "PhB", "PhC")),
        Field("TotVArh_SF", Kind.SUNSSF, None),
        Field("Evt", Kind.BITFIELD32, 0),
    ]
    return 203, fields


def model_213() -> tuple[int, list[Field]]:
    f = Kind.FLOAT32
    fields = [
        *_phase("A", f, "", Q.I_SUM, Q.I_L1, Q.I_L2, Q.I_L3),
        *_phase("PhV", f, "", Q.V_LN_AVG, Q.V_L1, Q.V_L2, Q.V_L3),
        *_phase("PPV", f, "", Q.V_LL_AVG, Q.V_L12, Q.V_L23, Q.V_L31, ("phAB", "phBC", "phCA"),
                phase_prefix="PhV"),
        Field("Hz", f, Q.FREQUENCY),
        *_phase("W", f, "", Q.P_TOTAL, Q.P_L1, Q.P_L2, Q.P_L3),
        *_phase("VA", f, "", Q.S_TOTAL, Q.S_L1, Q.S_L2, Q.S_L3),
        *_phase("VAR", f, "", Q.Q_TOTAL, Q.Q_L1, Q.Q_L2, Q.Q_L3),
        *_phase("PF", f, "", Q.PF_TOTAL, Q.PF_L1, Q.PF_L2, Q.PF_L3),
        *_phase("TotWhExp", f, "", Q.EXPORT_WH, Q.EXPORT_WH_L1, Q.EXPORT_WH_L2, Q.EXPORT_WH_L3,
                ("PhA", "PhB", "PhC")),
        *_phase("TotWhImp", f, "", Q.IMPORT_WH, Q.IMPORT_WH_L1, Q.IMPORT_WH_L2, Q.IMPORT_WH_L3,
                ("PhA", "PhB", "PhC")),
        *_phase("TotVAhExp", f, "", None, None, None, None, ("PhA", "PhB", "PhC")),
        *_phase("TotVAhImp", f, "", None, None, None, None, ("PhA", "PhB", "PhC")),
        *_phase("TotVArhImpQ1", f, "", None, None, None, None, ("PhA", "PhB", "PhC")),
        *_phase("TotVArhImpQ2", f, "", None, None, None, None, ("PhA", "PhB", "PhC")),
        *_phase("TotVArhExpQ3", f, "", None, None, None, None, ("PhA", "PhB", "PhC")),
        *_phase("TotVArhExpQ4", f, "", None, None, None, None, ("PhA", "PhB", "PhC")),
        Field("Evt", Kind.BITFIELD32, 0),
    ]
    return 213, fields


MODEL_LENGTHS = {1: 66, 203: 105, 213: 124}
"""Registers after the length field, from the SunSpec model definitions."""

DEFAULT_SCALE_FACTORS = {
    "A_SF": -2,
    "V_SF": -1,
    "Hz_SF": -2,
    "W_SF": 0,
    "VA_SF": 0,
    "VAR_SF": 0,
    # PF is in percent in SunSpec: 97.5 % is 975 with PF_SF -1.
    "PF_SF": -1,
    "TotWh_SF": 0,
}


@dataclass(frozen=True)
class Block:
    model_id: int
    address: int
    """Address of the model id register; the length follows, then the data."""
    length: int


def layout(models: Sequence[tuple[int, list[Field]]], sf: dict[str, int]) -> tuple[list[Point], list[Block]]:
    """Points of the whole SunSpec map (marker, model blocks, end marker) and where each block starts."""
    points = [Point(BASE, Kind.UINT16, const=MARKER[0], name="SunS0"),
              Point(BASE + 1, Kind.UINT16, const=MARKER[1], name="SunS1")]
    blocks: list[Block] = []
    addr = BASE + 2
    for model_id, fields in models:
        start = addr
        points.append(Point(addr, Kind.UINT16, const=model_id, name=f"{model_id}.ID"))
        length_point = addr + 1
        addr += 2
        for f in fields:
            quantity = f.source if isinstance(f.source, Q) else None
            const = None if isinstance(f.source, Q) else f.source
            scale = sf[f.sf] if f.sf and quantity is not None else 0
            # SunSpec gives PF in percent; the vocabulary holds it as a fraction.
            if quantity is not None and f.name.startswith("PF"):
                scale -= 2
            p = Point(addr, f.kind, quantity=quantity, scale=scale, const=const, size=f.size,
                      name=f"{model_id}.{f.name}")
            points.append(p)
            addr = p.end
        length = addr - start - 2
        if length != MODEL_LENGTHS[model_id]:
            raise ConfigError(f"SunSpec model {model_id} laid out with length {length}, "
                              f"the specification says {MODEL_LENGTHS[model_id]}")
        points.append(Point(length_point, Kind.UINT16, const=length, name=f"{model_id}.L"))
        blocks.append(Block(model_id, start, length))
    points.append(Point(addr, Kind.UINT16, const=END_ID, name="end.ID"))
    points.append(Point(addr + 1, Kind.UINT16, const=0, name="end.L"))
    return points, blocks


def sunspec(unit: int, *, float_model: bool = False, energy_sf: int = 0, serial: str | None = None,
            version: str = "0.1.0") -> DeviceSpec:
    if not -10 <= energy_sf <= 10:
        raise ConfigError(f"SunSpec TotWh_SF {energy_sf} outside -10..10")
    sf = {**DEFAULT_SCALE_FACTORS, "TotWh_SF": energy_sf}
    models = [
        model_1("SunSpec meter 203+213 (sim)" if float_model else "SunSpec meter 203 (sim)", version,
                serial or f"GTX-SIM-{unit:03d}", unit),
        model_203(sf),
    ]
    if float_model:
        models.append(model_213())
    points, blocks = layout(models, sf)
    by_id = {b.model_id: b.address for b in blocks}
    m203 = by_id[203]
    readouts = {
        "import": Readout(3, m203 + 46, Kind.ACC32, energy_sf, "Wh"),
        "export": Readout(3, m203 + 38, Kind.ACC32, energy_sf, "Wh"),
        "power": Readout(3, m203 + 18, Kind.INT16, sf["W_SF"], "W"),
    }
    if float_model:
        m213 = by_id[213]
        readouts |= {
            "m213_import": Readout(3, m213 + 68, Kind.FLOAT32, 0, "Wh"),
            "m213_export": Readout(3, m213 + 60, Kind.FLOAT32, 0, "Wh"),
            "m213_power": Readout(3, m213 + 28, Kind.FLOAT32, 0, "W"),
        }
    end = max(p.end for p in points)
    return DeviceSpec(
        model="sunspec",
        description="SunSpec three-phase wye meter (models 1, 203" + (", 213)" if float_model else ")"),
        datasheet=DATASHEET,
        phases=3,
        maps={3: RegisterMap(function_code=3, start=BASE, end=end, points=points)},
        readouts=readouts,
    )
