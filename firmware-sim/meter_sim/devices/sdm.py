"""Eastron SDM120 and SDM630 (Modbus RTU, input registers, function code 04).

Every measurement is an IEEE-754 float32 in two registers, high word first; addresses are 0-based
(the datasheets number them 30001 + address). Energies are kWh/kVArh, powers W/VA/VAr, and active power
is negative while exporting. Unmapped addresses inside the served range read as 0, as on the meter.

Sources: Eastron "SDM630 Modbus Protocol" and "SDM120 Modbus Protocol" input register tables.
A few holding registers (function code 03, also float32) are served so a scanner can probe the meter,
and the identity block Eastron meters carry at holding 0xFC00-0xFC03: serial number (uint32), meter code
(uint16) and firmware version (uint16). The meter codes are what real meters report there: 0x0020 for
the SDM120-Modbus, 0x0070 for the SDM630-Modbus (the codes Victron's dbus-modbus-client drivers match;
Eastron's SDM630MCT manual documents the register).
"""

from __future__ import annotations

from meter_sim.devices.spec import DeviceSpec, Readout
from meter_sim.quantities import Quantity as Q
from meter_sim.registers import Kind, Point, RegisterMap, RegisterSpace

SDM630_DATASHEET = "https://www.eastroneurope.com/images/uploads/products/protocol/SDM630_MODBUS_Protocol.pdf"
SDM120_DATASHEET = "https://www.eastroneurope.com/images/uploads/products/protocol/SDM120-MODBUS_Protocol.pdf"

KWH = 3  # kWh registers hold Wh / 10**3

# (address, measurement, scale) -- float32 each, read with function code 04.
SDM630_INPUT: tuple[tuple[int, Q, int], ...] = (
    (0x0000, Q.V_L1, 0),
    (0x0002, Q.V_L2, 0),
    (0x0004, Q.V_L3, 0),
    (0x0006, Q.I_L1, 0),
    (0x0008, Q.I_L2, 0),
    (0x000A, Q.I_L3, 0),
    (0x000C, Q.P_L1, 0),
    (0x000E, Q.P_L2, 0),
    (0x0010, Q.P_L3, 0),
    (0x0012, Q.S_L1, 0),
    (0x0014, Q.S_L2, 0),
    (0x0016, Q.S_L3, 0),
    (0x0018, Q.Q_L1, 0),
    (0x001A, Q.Q_L2, 0),
    (0x001C, Q.Q_L3, 0),
    (0x001E, Q.PF_L1, 0),
    (0x0020, Q.PF_L2, 0),
    (0x0022, Q.PF_L3, 0),
    (0x0024, Q.ANGLE_L1, 0),
    (0x0026, Q.ANGLE_L2, 0),
    (0x0028, Q.ANGLE_L3, 0),
    (0x002A, Q.V_LN_AVG, 0),
    (0x002E, Q.I_AVG, 0),
    (0x0030, Q.I_SUM, 0),
    (0x0034, Q.P_TOTAL, 0),
    (0x0038, Q.S_TOTAL, 0),
    (0x003C, Q.Q_TOTAL, 0),
    (0x003E, Q.PF_TOTAL, 0),
    (0x0042, Q.ANGLE_TOTAL, 0),
    (0x0046, Q.FREQUENCY, 0),
    (0x0048, Q.IMPORT_WH, KWH),
    (0x004A, Q.EXPORT_WH, KWH),
    (0x004C, Q.IMPORT_VARH, KWH),
    (0x004E, Q.EXPORT_VARH, KWH),
    (0x00C8, Q.V_L12, 0),
    (0x00CA, Q.V_L23, 0),
    (0x00CC, Q.V_L31, 0),
    (0x00CE, Q.V_LL_AVG, 0),
    (0x00E0, Q.I_N, 0),
    (0x00EA, Q.THD_V_L1, 0),
    (0x00EC, Q.THD_V_L2, 0),
    (0x00EE, Q.THD_V_L3, 0),
    (0x00F8, Q.THD_V_AVG, 0),
    (0x0156, Q.TOTAL_WH, KWH),
    (0x0158, Q.TOTAL_VARH, KWH),
    (0x015A, Q.IMPORT_WH_L1, KWH),
    (0x015C, Q.IMPORT_WH_L2, KWH),
    (0x015E, Q.IMPORT_WH_L3, KWH),
    (0x0160, Q.EXPORT_WH_L1, KWH),
    (0x0162, Q.EXPORT_WH_L2, KWH),
    (0x0164, Q.EXPORT_WH_L3, KWH),
    (0x0166, Q.TOTAL_WH_L1, KWH),
    (0x0168, Q.TOTAL_WH_L2, KWH),
    (0x016A, Q.TOTAL_WH_L3, KWH),
)

SDM120_INPUT: tuple[tuple[int, Q, int], ...] = (
    (0x0000, Q.V_L1, 0),
    (0x0006, Q.I_L1, 0),
    (0x000C, Q.P_L1, 0),
    (0x0012, Q.S_L1, 0),
    (0x0018, Q.Q_L1, 0),
    (0x001E, Q.PF_L1, 0),
    (0x0024, Q.ANGLE_L1, 0),
    (0x0046, Q.FREQUENCY, 0),
    (0x0048, Q.IMPORT_WH, KWH),
    (0x004A, Q.EXPORT_WH, KWH),
    (0x004C, Q.IMPORT_VARH, KWH),
    (0x004E, Q.EXPORT_VARH, KWH),
    (0x0156, Q.TOTAL_WH, KWH),
    (0x0158, Q.TOTAL_VARH, KWH),
)

METER_CODES = {"sdm120": 0x0020, "sdm630": 0x0070}
IDENTITY_BLOCK = 0xFC00
FIRMWARE_VERSION = 0x0102
SERIAL_BASE = 24_000_000
"""Simulated serial numbers are SERIAL_BASE + unit id: distinct per meter on a bus, like real ones."""

SYSTEM_TYPE_3P4W = 3.0
SYSTEM_TYPE_1P2W = 1.0
PARITY_NONE_ONE_STOP = 0.0


def _input_map(table: tuple[tuple[int, Q, int], ...]) -> RegisterMap:
    points = [Point(addr, Kind.FLOAT32, quantity=q, scale=scale, name=q.value) for addr, q, scale in table]
    return RegisterMap(function_code=4, start=0x0000, end=max(p.end for p in points), points=points)


def _holding_map(model: str, unit: int, system_type: float | None) -> RegisterSpace:
    points = [
        Point(0x0012, Kind.FLOAT32, const=PARITY_NONE_ONE_STOP, name="network_parity_stop"),
        Point(0x0014, Kind.FLOAT32, const=float(unit), name="node_address"),
    ]
    if system_type is not None:
        points.append(Point(0x000A, Kind.FLOAT32, const=system_type, name="system_type"))
    serial = SERIAL_BASE + unit
    identity = [
        Point(IDENTITY_BLOCK, Kind.UINT16, const=serial >> 16, name="serial_hi"),
        Point(IDENTITY_BLOCK + 1, Kind.UINT16, const=serial & 0xFFFF, name="serial_lo"),
        Point(IDENTITY_BLOCK + 2, Kind.UINT16, const=METER_CODES[model], name="meter_code"),
        Point(IDENTITY_BLOCK + 3, Kind.UINT16, const=FIRMWARE_VERSION, name="firmware_version"),
    ]
    return RegisterSpace(3, [
        RegisterMap(function_code=3, start=0x0000, end=0x0020, points=points),
        RegisterMap(function_code=3, start=IDENTITY_BLOCK, end=IDENTITY_BLOCK + 4, points=identity),
    ])


def _readouts() -> dict[str, Readout]:
    return {
        "import": Readout(4, 0x0048, Kind.FLOAT32, 0, "kWh"),
        "export": Readout(4, 0x004A, Kind.FLOAT32, 0, "kWh"),
        "power": Readout(4, 0x0034, Kind.FLOAT32, 0, "W"),
    }


def sdm630(unit: int) -> DeviceSpec:
    return DeviceSpec(
        model="sdm630",
        description="Eastron SDM630 three-phase four-wire meter",
        datasheet=SDM630_DATASHEET,
        phases=3,
        maps={4: _input_map(SDM630_INPUT), 3: _holding_map("sdm630", unit, SYSTEM_TYPE_3P4W)},
        readouts=_readouts(),
    )


def sdm120(unit: int) -> DeviceSpec:
    readouts = _readouts()
    # The SDM120 has no system-total register block; its one phase's power sits at 0x000C.
    readouts["power"] = Readout(4, 0x000C, Kind.FLOAT32, 0, "W")
    return DeviceSpec(
        model="sdm120",
        description="Eastron SDM120 single-phase meter",
        datasheet=SDM120_DATASHEET,
        phases=1,
        maps={4: _input_map(SDM120_INPUT), 3: _holding_map("sdm120", unit, None)},
        readouts=readouts,
    )
