"""The gateway's exception tree.  pymodbus, serial and socket errors are translated at the transport
boundary (``raise ... from``) so callers handle one family, and every message names the bus, the unit
id and the register address involved.

    GatewayError
    ├── ConfigError                 the configuration file is unusable (all problems in one message)
    └── MeterError                  talking to one meter failed
        ├── BusUnavailable          the serial port or TCP connection cannot be opened / was lost
        ├── MeterTimeout            no (valid) answer within the meter's timeout
        ├── MeterExceptionResponse  the meter answered with a Modbus exception code
        ├── BadResponse             an answer of the wrong shape (register count, function)
        ├── DiscoveryError          SunSpec marker or a supported meter model was not found
        └── ModelMismatch           the device reports another model than the configuration names
"""

from __future__ import annotations

__all__ = [
    "BadResponse",
    "BusUnavailable",
    "ConfigError",
    "DiscoveryError",
    "GatewayError",
    "MeterError",
    "MeterExceptionResponse",
    "MeterTimeout",
    "ModelMismatch",
]


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""


class ConfigError(GatewayError):
    """The configuration is invalid; the message lists every problem, one per line."""


class MeterError(GatewayError):
    """A request to one meter failed.  ``transient`` says whether retrying may help."""

    transient = True

    def __init__(
        self, detail: str, *, bus: str, unit: int | None = None, address: int | None = None
    ) -> None:
        where = f"bus {bus}"
        if unit is not None:
            where += f" unit {unit}"
        if address is not None:
            where += f" register {address}"
        super().__init__(f"{where}: {detail}")
        self.bus = bus
        self.unit = unit
        self.address = address
        self.detail = detail


class BusUnavailable(MeterError):
    pass


class MeterTimeout(MeterError):
    pass


class MeterExceptionResponse(MeterError):
    """``code`` is the Modbus exception code (2 illegal address, 6 busy, ...)."""

    # 5 ACKNOWLEDGE and 6 DEVICE BUSY mean "ask again later"; the others will not change by retrying.
    _TRANSIENT_CODES = frozenset({5, 6})

    def __init__(self, code: int, *, bus: str, unit: int | None = None, address: int | None = None) -> None:
        super().__init__(f"Modbus exception code {code}", bus=bus, unit=unit, address=address)
        self.code = code
        self.transient = code in self._TRANSIENT_CODES


class BadResponse(MeterError):
    pass


class DiscoveryError(MeterError):
    transient = False


class ModelMismatch(MeterError):
    """The device says it is another model than configured; with ``identify = "refuse"`` it is not read
    (its values would be decoded with the wrong register table and signed)."""

    transient = False
