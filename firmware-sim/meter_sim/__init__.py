"""Simulated Modbus energy meters (Eastron SDM120/SDM630, SunSpec) for tests and demos.

    meter = SimMeter("sdm630", unit=1, speedup=60)
    async with serve_tcp([meter]) as server:   # or serve_rtu([...], device) on a SerialPair end
        ...  # a Modbus client on 127.0.0.1:server.port; compare with meter.truth()
"""

from meter_sim.errors import ConfigError, MeterSimError, ModbusExceptionReply, SerialPairError
from meter_sim.meter import Faults, SimClock, SimMeter
from meter_sim.profiles import Profile, SiteProfile
from meter_sim.quantities import Quantity
from meter_sim.serial_pair import SerialPair
from meter_sim.server import RtuServer, TcpServer, serve_rtu, serve_tcp, wire_time_s

__all__ = [
    "ConfigError",
    "Faults",
    "MeterSimError",
    "ModbusExceptionReply",
    "Profile",
    "Quantity",
    "RtuServer",
    "SerialPair",
    "SerialPairError",
    "SimClock",
    "SimMeter",
    "SiteProfile",
    "TcpServer",
    "serve_rtu",
    "serve_tcp",
    "wire_time_s",
]
