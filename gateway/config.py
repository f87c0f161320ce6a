"""The gateway's configuration: one typed model, read from TOML and overridden from the environment.

Layers, lowest first (later ones win):

1. the TOML file (``systemd/gateway.example.toml`` is the commented example);
2. secret files in ``$CREDENTIALS_DIRECTORY`` (systemd ``LoadCredential=``), one file per key named
   with ``__`` between levels, e.g. ``mqtt__password`` or ``status__token``;
3. environment variables ``GRIDTOKENX_<SECTION>__<KEY>`` for every scalar key, nested with ``__``
   (``GRIDTOKENX_MQTT__HOST``, ``GRIDTOKENX_MQTT__TLS__CA_FILE``); entries of ``[[bus]]`` and
   ``[[meter]]`` by their position: ``GRIDTOKENX_METER__0__INTERVAL=5``. A whole section may also be
   given as JSON (``GRIDTOKENX_STATUS='{"listen": "0.0.0.0:8080"}'``).

pydantic-settings parses layers 2 and 3 (prefix, case, nesting, JSON values); they are merged here,
list-aware, so a ``[[meter]]`` entry can be changed by index without restating the list. Then
:class:`GatewayConfig` validates the result once: unknown keys are rejected, and every problem -- field
errors in any section and cross-references such as a meter naming a bus that does not exist -- is
gathered into one :class:`~gateway.errors.ConfigError` whose lines name the key path (and the
environment variable, when the value came from one).

Sections other modules add go here as typed fields too, so that one validation covers them; see
:func:`effective_config` for what ``gridtokenx gateway check-config`` prints (secrets masked).
"""

from __future__ import annotations

import json
import os
import tomllib
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NestedSecretsSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

from gateway.errors import ConfigError
from gateway.keys import KeySettings
from gateway.measurements import Measurement
from gateway.models import MODELS
from gateway.mqtt_publisher import MqttSettings
from gateway.outbox import OutboxSettings
from gateway.status_page import StatusSettings
from gateway.telemetry import TelemetrySettings
from gridtokenx.batch import BatchFormatError, check_gateway_id

__all__ = [
    "BusConfig",
    "GatewayConfig",
    "GatewaySection",
    "MeterConfig",
    "RtuBusConfig",
    "TcpBusConfig",
    "effective_config",
    "load_config",
    "parse_config",
]

ENV_PREFIX = "GRIDTOKENX_"
ENV_NESTED = "__"

# Same rule as the signed reading's meter_id (gridtokenx.reading): it travels in every reading.
METER_ID_PATTERN = r"^[A-Za-z0-9._:\-]{1,16}$"
NAME_PATTERN = r"^[A-Za-z0-9._:\-]{1,64}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]


def _int_from_text(value: Any) -> Any:
    """Environment values arrive as text; the Literal[int] keys (baud rate, stop bits) need numbers."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value


Baudrate = Annotated[Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200], BeforeValidator(_int_from_text)]
StopBits = Annotated[Literal[1, 2], BeforeValidator(_int_from_text)]
ByteSize = Annotated[Literal[7, 8], BeforeValidator(_int_from_text)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GatewaySection(_Section):
    id: Name


class RtuBusConfig(_Section):
    """An RS-485 line.  ``timeout`` is the default response timeout of its meters."""

    type: Literal["rtu"]
    name: Name
    device: str = Field(min_length=1)
    baudrate: Baudrate = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: StopBits = 1
    bytesize: ByteSize = 8
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
    # Seconds between reads of every measurement; the polls between read only what a signed reading
    # holds (energy counters, total power): one request instead of three for an SDM630. Default: the
    # telemetry interval while telemetry is on, else 10 s; 0 reads everything at every poll.
    values_interval: float | None = Field(default=None, ge=0, le=86400)
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

    def effective_values_interval(self, telemetry: TelemetrySettings) -> float:
        if self.values_interval is not None:
            return self.values_interval
        return telemetry.interval_s if telemetry.enabled else 10.0


class GatewayConfig(BaseSettings):
    """The whole configuration. Build it with :func:`load_config` / :func:`parse_config`, which layer
    the TOML file, credential files and the environment and report every problem at once."""

    model_config = SettingsConfigDict(
        extra="forbid",
        frozen=True,
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED,
        case_sensitive=False,
    )

    gateway: GatewaySection
    bus: list[BusConfig] = Field(min_length=1)
    meter: list[MeterConfig] = Field(min_length=1)
    mqtt: MqttSettings = MqttSettings()
    outbox: OutboxSettings = OutboxSettings()
    key: KeySettings = KeySettings()
    status: StatusSettings | None = None  # the status page is off unless configured
    telemetry: TelemetrySettings = TelemetrySettings()  # every measured value on MQTT (gateway.telemetry)

    @model_validator(mode="after")
    def _mqtt_gateway_id(self) -> GatewayConfig:
        # The MQTT topic level is this gateway's id unless [mqtt] gateway_id says otherwise (and then it
        # must agree). Set here, once, so every user of the model sees the effective value.
        if self.mqtt.gateway_id is None:
            try:
                gateway_id = check_gateway_id(self.gateway.id)
            except BatchFormatError as exc:
                raise ValueError(f"gateway.id: {exc} (it is the MQTT topic level of this gateway)") from None
            object.__setattr__(self, "mqtt", self.mqtt.model_copy(update={"gateway_id": gateway_id}))
        elif self.mqtt.gateway_id != self.gateway.id:
            raise ValueError(f"mqtt.gateway_id: {self.mqtt.gateway_id!r} differs from gateway.id {self.gateway.id!r}")
        return self

    def bus_by_name(self, name: str) -> RtuBusConfig | TcpBusConfig:
        for b in self.bus:
            if b.name == name:
                return b
        raise KeyError(name)

    def meters_on(self, bus_name: str) -> list[MeterConfig]:
        return [m for m in self.meter if m.bus == bus_name]


# --- layering: TOML, credential files, environment -------------------------------------------------


class _EnvSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping (the process environment by default),
    so tests and ``check-config`` can say which environment they mean."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        super().__init__(GatewayConfig)
        self.env_vars = parse_env_vars(
            dict(environ), self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )


def _credential_values(environ: Mapping[str, str]) -> dict[str, Any]:
    directory = environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return {}
    # Credential files carry no prefix: their directory is this service's own.
    source = NestedSecretsSettingsSource(
        SecretsSettingsSource(GatewayConfig, secrets_dir=directory),
        secrets_dir_missing="ok",
        secrets_prefix="",
    )
    return source()


def _maybe_json(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _merge(base: Any, over: Any, path: tuple[str, ...], origin: str, seen: dict[str, str], problems: list[str]) -> Any:
    """``over`` laid on ``base``. Tables merge key by key; a list entry is addressed by its index
    (``{"0": {...}}``); anything else replaces. ``seen`` records which key paths a layer set."""
    if isinstance(over, dict) and isinstance(base, list):
        merged = list(base)
        for index, value in over.items():
            if not str(index).isdigit() or int(index) >= len(base):
                problems.append(
                    f"{path[-1]}[{index}]: {origin} {_var_name((*path, str(index)), origin)}{ENV_NESTED}… names "
                    f"no entry: there {'is' if len(base) == 1 else 'are'} {len(base)}, numbered from 0"
                )
                continue
            merged[int(index)] = _merge(base[int(index)], value, (*path, str(index)), origin, seen, problems)
        return merged
    if isinstance(over, dict) and isinstance(base, dict):
        merged_dict = dict(base)
        for k, v in over.items():
            merged_dict[k] = _merge(base.get(k), v, (*path, k), origin, seen, problems)
        return merged_dict
    if isinstance(over, dict) and base is None:
        return {k: _merge(None, v, (*path, k), origin, seen, problems) for k, v in over.items()}
    seen[".".join(path)] = origin
    return _maybe_json(over)


def _var_name(path: tuple[str, ...], origin: str) -> str:
    if origin == "credential":
        return ENV_NESTED.join(path)
    return ENV_PREFIX + ENV_NESTED.join(path).upper()


def _layered(
    raw: dict[str, Any], environ: Mapping[str, str], problems: list[str]
) -> tuple[dict[str, Any], dict[str, str]]:
    seen: dict[str, str] = {}
    merged: Any = raw
    for origin, values in (("credential", _credential_values(environ)), ("environment", _EnvSource(environ)())):
        merged = _merge(merged, values, (), origin, seen, problems)
    return merged, seen


# --- reporting -------------------------------------------------------------------------------------


def _entry_label(raw: Any, section: str, index: int) -> str:
    label = f"{section}[{index}]"
    entries = raw.get(section) if isinstance(raw, dict) else None
    if isinstance(entries, list) and index < len(entries) and isinstance(entries[index], dict):
        key = "id" if section == "meter" else "name"
        if isinstance(entries[index].get(key), str):
            label += f' ({key} "{entries[index][key]}")'
    return label


def _format_error(raw: Any, err: Any, seen: Mapping[str, str]) -> str:
    loc = list(err["loc"])
    plain = [str(p) for p in loc if p not in ("rtu", "tcp")]  # the key path as the layers name it
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
    if not parts and message.startswith(("gateway.id: ", "mqtt.gateway_id: ")):
        where, _, message = message.partition(": ")
    origin = seen.get(".".join(plain))
    if origin is not None:
        message += f" (from {origin} {_var_name(tuple(plain), origin)})"
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
        if isinstance(bus, str) and isinstance(unit, int | str) and str(unit).isdigit():
            unit = int(unit)
            if (bus, unit) in seen:
                problems.append(
                    f"{_entry_label(raw, 'meter', i)}.unit: unit {unit} on bus \"{bus}\" is already "
                    f"used by {_entry_label(raw, 'meter', seen[(bus, unit)])}"
                )
            else:
                seen[(bus, unit)] = i
    return problems


def parse_config(
    text: str,
    *,
    source: str = "<config>",
    environ: Mapping[str, str] | None = None,
    origins: dict[str, str] | None = None,
) -> GatewayConfig:
    """Validate TOML text layered with credential files and ``GRIDTOKENX_…`` variables from ``environ``
    (default: this process's environment); raise :class:`ConfigError` listing every problem.
    ``origins``, if given, receives the key paths set by a later layer -> "environment GRIDTOKENX_…"."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    problems: list[str] = []
    merged, seen = _layered(raw, os.environ if environ is None else environ, problems)
    if origins is not None:
        origins.update({path: f"{origin} {_var_name(tuple(path.split('.')), origin)}" for path, origin in seen.items()})
    config = None
    try:
        config = GatewayConfig.model_validate(merged)
    except ValidationError as exc:
        problems += [_format_error(merged, e, seen) for e in exc.errors()]
    problems += _cross_check(merged)
    if problems or config is None:
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        raise ConfigError(f"{source}: {count}\n" + "\n".join(f"  {p}" for p in problems))
    return config


def load_config(
    path: str | Path, *, environ: Mapping[str, str] | None = None, origins: dict[str, str] | None = None
) -> GatewayConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text: {exc}") from None
    return parse_config(text, source=str(path), environ=environ, origins=origins)


def effective_config(config: GatewayConfig) -> dict[str, Any]:
    """Every key with its effective value (defaults filled in), secrets masked: JSON-ready."""

    def plain(value: Any) -> Any:
        if isinstance(value, SecretStr):
            return "********" if value.get_secret_value() else ""
        if isinstance(value, BaseModel):
            return {name: plain(getattr(value, name)) for name in type(value).model_fields}
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        if isinstance(value, Path):
            return str(value)
        return value

    result: dict[str, Any] = plain(config)
    return result
