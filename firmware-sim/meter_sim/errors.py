"""The simulator's exception tree. Messages name the model, unit, address or device involved."""

from __future__ import annotations


class MeterSimError(Exception):
    """Base class of everything the simulator raises on purpose."""


class ConfigError(MeterSimError, ValueError):
    """A meter, server or command line was configured with values that cannot work."""


class SerialPairError(MeterSimError):
    """The virtual serial pair (socat) could not be created."""


class ModbusExceptionReply(MeterSimError):
    """A request the meter answers with a Modbus exception response (not a simulator failure)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"Modbus exception {code:#04x}: {message}")
        self.code = code
