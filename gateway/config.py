"""The gateway's configuration file (TOML), validated whole at start-up.

Unknown keys are rejected, and every problem -- field errors and cross-references such as a meter
naming a bus that does not exist -- is gathered into one :class:`~gateway.errors.ConfigError` whose
message names the entry and key, one problem per line.  See ``systemd/gateway.example.toml``.

The ``[mqtt]``, ``[outbox]``, ``[key]``, ``[status]`` and ``[telemetry]`` sections belong to other parts of the daemon;
they are accepted here as plain tables and validated by their owners.
"""

from __future__ import annotations

import tomllib
from collections import Counter
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gateway.errors import ConfigError
from gateway.measurements import Measurement
from gateway.models import MODELS

__all__ = [
    "BusConfig",
    "GatewayConfig",
    "GatewaySection",
    "MeterConfig",
    "RtuBusConfig",
    "TcpBusConfig",
    "load_config",
    "parse_config",
]

# Same rule as the signed reading's meter_id (gridtokenx.reading): it travels in every reading.
METER_ID_PATTERN = r"^[A-Za-z0-9._:\-]{1,16}$"
NAME_PATTERN = r"^[A-Za-z0-9._:\-]{1,64}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GatewaySection(_Section):
    id: Name


class RtuBusConfig(_Section):
    """An RS-485 line.  ``timeout`` is the default response timeout of its meters."""

    type: Literal["rtu"]
    name: Name
    device: str = Field(min_length=1)
    baudrate: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    timeout: float = Field(default=0.6, gt=0, le=30)
    inter_frame_gap: float | None = Field(default=None, ge=0, le=1)  # seconds; default 3.5 characters
    echo: bool = False  # the adapter echoes what it sends
    connect_timeout: float = Field(default=3.0, gt=0, le=60)


class TcpBusConfig(_Section):
    type: Literal["tcp"]
    name: Name
    host: str = Field(min_length=1)
    port: int = Field(default=502, ge=1, le=65535)
    timeout: float = Field(default=1.0, gt=0, le=30)
    connect_timeout: float = Field(default=3.0, gt=0, le=60)
    # One endpoint, shared by its meters: many Modbus TCP <-> RS-485 converters accept 1-4 connections.
    max_connections: int = Field(default=1, ge=1, le=16)
    # Requests outstanding at once per connection (matched by transaction id); 1 = one at a time.
    pipeline: int = Field(default=1, ge=1, le=256)


BusConfig = Annotated[RtuBusConfig | TcpBusConfig, Field(discriminator="type")]


class MeterConfig(_Section):
    id: str = Field(pattern=METER_ID_PATTERN)
    model: str
    unit: int = Field(ge=1, le=247)
    bus: Name
    interval: float = Field(default=10.0, ge=0.05, le=86400)  # seconds between polls
    timeout: float | None = Field(default=None, gt=0, le=30)  # per request; default: the bus's
    retries: int = Field(default=2, ge=0, le=10)  # per request, with backoff, within one interval
    offline_after: int = Field(default=3, ge=1, le=1000)  # consecutive failed polls
    offline_interval: float | None = Field(default=None, ge=0.05, le=86400)  # probe period when offline
    measurements: tuple[str, ...] | None = None  # poll only these (saves bus time); default: all
    max_power_w: int | None = Field(default=None, gt=0)  # plausibility bound; default: model rating
    # At first contact the meter is asked what it is (gateway.identify). A device that reports another
    # model is not read ("refuse"), read with every reading flagged meter_error ("flag"), or not asked.
    identify: Literal["refuse", "flag", "off"] = "refuse"

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        if value not in MODELS:
            raise ValueError(f"unknown model {value!r}; known: {', '.join(sorted(MODELS))}")
        return value

    @field_validator("measurements")
    @classmethod
    def _known_measurements(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        known = {m.value for m in Measurement}
        unknown = [v for v in value if v not in known]
        if unknown:
            raise ValueError(f"unknown measurement(s) {', '.join(unknown)}")
        return value

    @model_validator(mode="after")
    def _model_provides(self) -> MeterConfig:
        table = MODELS[self.model].table
        if self.measurements is not None and table is not None:
            missing = [m for m in self.measurements if Measurement.by_name(m) not in table]
            if missing:
                raise ValueError(f"model {self.model} does not provide {', '.join(missing)}")
        return self

    def effective_offline_interval(self) -> float:
        return self.offline_interval if self.offline_interval is not None else max(self.interval, 30.0)


class GatewayConfig(_Section):
    gateway: GatewaySection
    bus: list[BusConfig] = Field(min_length=1)
    meter: list[MeterConfig] = Field(min_length=1)
    # Owned by other modules (publisher, outbox, signing key, status page); validated there.
    mqtt: dict[str, Any] | None = None
    outbox: dict[str, Any] | None = None
    key: dict[str, Any] | None = None
    status: dict[str, Any] | None = None
    telemetry: dict[str, Any] | None = None

    def bus_by_name(self, name: str) -> RtuBusConfig | TcpBusConfig:
        for b in self.bus:
            if b.name == name:
                return b
        raise KeyError(name)

    def meters_on(self, bus_name: str) -> list[MeterConfig]:
        return [m for m in self.meter if m.bus == bus_name]


def _entry_label(raw: Any, section: str, index: int) -> str:
    label = f"{section}[{index}]"
    entries = raw.get(section) if isinstance(raw, dict) else None
    if isinstance(entries, list) and index < len(entries) and isinstance(entries[index], dict):
        key = "id" if section == "meter" else "name"
        if isinstance(entries[index].get(key), str):
            label += f' ({key} "{entries[index][key]}")'
    return label


def _format_error(raw: Any, err: Any) -> str:
    loc = list(err["loc"])
    parts: list[str] = []
    if len(loc) >= 2 and loc[0] in ("bus", "meter") and isinstance(loc[1], int):
        parts.append(_entry_label(raw, loc[0], loc[1]))
        loc = loc[2:]
        if loc and loc[0] in ("rtu", "tcp"):  # the discriminated union's tag
            loc = loc[1:]
    parts += [str(p) for p in loc]
    where = ".".join(parts) if parts else "(top level)"
    if err["type"] == "extra_forbidden":
        message = "unknown key"
    elif err["type"] == "missing":
        message = "required key is missing"
    elif err["type"] == "string_pattern_mismatch":
        longest = 16 if err.get("ctx", {}).get("pattern") == METER_ID_PATTERN else 64
        message = f"{err['input']!r} must be 1-{longest} characters from A-Z a-z 0-9 . _ : -"
    else:
        message = err["msg"].removeprefix("Value error, ")
    return f"{where}: {message}"


def _cross_check(raw: Any) -> list[str]:
    """References between entries, checked on the raw tables so they are reported together with
    field errors (pydantic stops before whole-model validators when a field is wrong)."""
    if not isinstance(raw, dict):
        return []
    buses = [b for b in raw.get("bus") or [] if isinstance(b, dict)] if isinstance(raw.get("bus"), list) else []
    meters = (
        [m for m in raw.get("meter") or [] if isinstance(m, dict)] if isinstance(raw.get("meter"), list) else []
    )
    problems = []
    bus_names = [b.get("name") for b in buses if isinstance(b.get("name"), str)]
    for name, n in Counter(bus_names).items():
        if n > 1:
            problems.append(f'bus: name "{name}" is used by {n} buses')
    for name, n in Counter(m.get("id") for m in meters if isinstance(m.get("id"), str)).items():
        if n > 1:
            problems.append(f'meter: id "{name}" is used by {n} meters')
    seen: dict[tuple[str, int], int] = {}
    for i, m in enumerate(raw.get("meter") or []):
        if not isinstance(m, dict):
            continue
        bus = m.get("bus")
        if isinstance(bus, str) and bus not in bus_names:
            known = ", ".join(f'"{b}"' for b in bus_names) or "none"
            problems.append(f'{_entry_label(raw, "meter", i)}.bus: no bus named "{bus}" (buses: {known})')
        unit = m.get("unit")
        if isinstance(bus, str) and isinstance(unit, int):
            if (bus, unit) in seen:
                problems.append(
                    f"{_entry_label(raw, 'meter', i)}.unit: unit {unit} on bus \"{bus}\" is already "
                    f"used by {_entry_label(raw, 'meter', seen[(bus, unit)])}"
                )
            else:
                seen[(bus, unit)] = i
    return problems


def parse_config(text: str, *, source: str = "<config>") -> GatewayConfig:
    """Validate TOML text; raise :class:`ConfigError` listing every problem."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    problems: list[str] = []
    config = None
    try:
        config = GatewayConfig.model_validate(raw)
    except ValidationError as exc:
        problems += [_format_error(raw, e) for e in exc.errors()]
    problems += _cross_check(raw)
    if problems or config is None:
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        raise ConfigError(f"{source}: {count}\n" + "\n".join(f"  {p}" for p in problems))
    return config


def load_config(path: str | Path) -> GatewayConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text: {exc}") from None
    return parse_config(text, source=str(path))
