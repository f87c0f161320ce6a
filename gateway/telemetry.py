"""Every measured value for MQTT subscribers, and Home Assistant discovery so meters appear by themselves.

The signed readings carry only what is traded (import, export, power). The poller reads much more —
voltages, currents, frequency, per-phase powers, power factors — and this module publishes all of it, per
meter, on ``<topic_root>/<gateway>/telemetry/<meter>`` (docs/mqtt.md): JSON with a unit per value,
retained (a subscriber that connects sees the last values at once), QoS 0 by default, at most one message
per ``interval_s`` per meter. Telemetry is a convenience view: it is not signed, not stored, not resent —
while the broker is away nothing queues, and the next message after it returns carries the latest values.

With ``homeassistant = true`` the gateway also publishes, retained, one MQTT discovery config per measured
value (``homeassistant/sensor/<node>/<object>/config``): device class, unit and state class per measurement
from one table (:data:`HA_SENSORS`); energy counters are ``total_increasing`` so they can be chosen in Home
Assistant's energy dashboard. Availability follows the gateway's retained status message.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.measurements import Measurement
from gateway.sample import MeterSample
from gridtokenx import __version__
from gridtokenx.batch import TOPIC_ROOT, status_topic
from gridtokenx.mqtt import MqttConnection, MqttError

__all__ = [
    "HA_SENSORS",
    "HaSensor",
    "MeterInfo",
    "TelemetryPublisher",
    "TelemetrySettings",
    "discovery_messages",
    "telemetry_payload",
    "telemetry_topic",
]

log = logging.getLogger(__name__)

TELEMETRY_VERSION = 1


class TelemetrySettings(BaseModel):
    """``[telemetry]`` in the gateway configuration (all optional)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    # Seconds between two messages of one meter (0: every poll). Retained, so a slow rate costs a new
    # subscriber nothing: it gets the last values at once.
    interval_s: float = Field(default=10.0, ge=0, le=86400)
    qos: Literal[0, 1] = 0
    retain: bool = True
    # Home Assistant MQTT discovery (off unless asked for).
    homeassistant: bool = False
    discovery_prefix: str = "homeassistant"

    @field_validator("discovery_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value or any(c in value for c in "+#") or value.startswith("/") or value.endswith("/"):
            raise ValueError(f"discovery_prefix {value!r} must be a plain topic prefix such as 'homeassistant'")
        return value


@dataclass(frozen=True, slots=True)
class MeterInfo:
    """What the telemetry and discovery messages say about a meter besides its values."""

    meter_id: str
    model: str
    manufacturer: str | None = None
    product: str | None = None
    serial: str | None = None


@dataclass(frozen=True, slots=True)
class HaSensor:
    """How one unit of the vocabulary appears in Home Assistant."""

    device_class: str | None
    state_class: str
    unit: str
    template: str = "{{{{ value_json.values.{name} }}}}"


# Vocabulary unit -> Home Assistant sensor. One table, so a new measurement gets its HA form by its unit.
# Power factor is -1..1 in the vocabulary; Home Assistant's power_factor class wants % (or no unit), so
# the template scales it. Reactive energy has no device class every Home Assistant version knows.
HA_SENSORS: Mapping[str, HaSensor] = {
    "V": HaSensor("voltage", "measurement", "V"),
    "A": HaSensor("current", "measurement", "A"),
    "W": HaSensor("power", "measurement", "W"),
    "VA": HaSensor("apparent_power", "measurement", "VA"),
    "var": HaSensor("reactive_power", "measurement", "var"),
    "Hz": HaSensor("frequency", "measurement", "Hz"),
    "Wh": HaSensor("energy", "total_increasing", "Wh"),
    "varh": HaSensor(None, "total_increasing", "varh"),
    "": HaSensor("power_factor", "measurement", "%", "{{{{ (value_json.values.{name} * 100) | round(2) }}}}"),
    "deg": HaSensor(None, "measurement", "°"),
    "%": HaSensor(None, "measurement", "%"),
}

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def _ha_id(text: str) -> str:
    """Home Assistant node and object ids: [A-Za-z0-9_-] only."""
    return _UNSAFE.sub("_", text)


def telemetry_topic(gateway_id: str, meter_id: str, root: str = TOPIC_ROOT) -> str:
    return f"{root}/{gateway_id}/telemetry/{meter_id}"


_UNITS: dict[tuple[str, ...], dict[str, str]] = {}


def _units(names: tuple[str, ...]) -> dict[str, str]:
    """The units of a meter's measurements (one dict per set of names, made once)."""
    units = _UNITS.get(names)
    if units is None:
        units = _UNITS[names] = {name: Measurement.by_name(name).unit for name in names}
    return units


def telemetry_payload(gateway_id: str, info: MeterInfo, sample: MeterSample) -> bytes:
    """The telemetry message of one sample (docs/mqtt.md, "Telemetry")."""
    values: Mapping[str, float | None] = sample.values
    if not all(map(math.isfinite, sample.values.values())):
        # JSON has no NaN: a value the meter sent as NaN or infinity is null.
        values = {name: value if math.isfinite(value) else None for name, value in sample.values.items()}
    units = _units(tuple(sample.values))
    message: dict[str, Any] = {
        "v": TELEMETRY_VERSION,
        "gateway": gateway_id,
        "meter": sample.meter_id,
        "model": info.model,
        "ts_ms": sample.timestamp_ms,
        "clock": sample.clock.name.lower(),
        "meter_error": sample.meter_error,
        "problems": list(sample.problems),
        "values": values,
        "units": units,
    }
    return json.dumps(message, separators=(",", ":")).encode()


def discovery_messages(
    gateway_id: str, info: MeterInfo, measurements: list[str], settings: TelemetrySettings, root: str = TOPIC_ROOT
) -> list[tuple[str, bytes]]:
    """(topic, payload) of the Home Assistant discovery config of each measured value of one meter."""
    node = _ha_id(f"gridtokenx_{gateway_id}")
    device_id = _ha_id(f"gridtokenx_{gateway_id}_{info.meter_id}")
    device: dict[str, Any] = {
        "identifiers": [device_id],
        "name": f"{info.meter_id} ({info.product or info.model})",
        "manufacturer": info.manufacturer or "unknown",
        "model": info.product or info.model,
        "via_device": node,
    }
    if info.serial:
        device["serial_number"] = info.serial
    out = []
    for name in measurements:
        measurement = Measurement.by_name(name)
        sensor = HA_SENSORS[measurement.unit]
        object_id = _ha_id(f"{info.meter_id}_{name}")
        config: dict[str, Any] = {
            "name": measurement.description[:1].upper() + measurement.description[1:],
            "unique_id": f"{device_id}_{name}",
            "state_topic": telemetry_topic(gateway_id, info.meter_id, root),
            "value_template": sensor.template.format(name=name),
            "unit_of_measurement": sensor.unit,
            "state_class": sensor.state_class,
            "availability_topic": status_topic(gateway_id, root),
            "availability_template": "{{ value_json.state }}",
            "payload_available": "online",
            "payload_not_available": "offline",
            "device": device,
            "origin": {"name": "GridTokenX Edge", "sw_version": __version__},
        }
        if sensor.device_class is not None:
            config["device_class"] = sensor.device_class
        topic = f"{settings.discovery_prefix}/sensor/{node}/{object_id}/config"
        out.append((topic, json.dumps(config, separators=(",", ":")).encode()))
    return out


class TelemetryPublisher:
    """Publishes telemetry through the gateway's one MQTT connection (owned by the reading publisher):
    :meth:`offer` every sample; :meth:`on_connect` after every (re)connection."""

    def __init__(
        self,
        settings: TelemetrySettings,
        gateway_id: str,
        connection: Callable[[], MqttConnection | None],
        meter_info: Callable[[str], MeterInfo],
        *,
        root: str = TOPIC_ROOT,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.gateway_id = gateway_id
        self._connection = connection
        self._meter_info = meter_info
        self._root = root
        self._monotonic = monotonic
        self._last_sent: dict[str, float] = {}
        self._announced: dict[str, tuple[str, ...]] = {}  # meter -> measurements announced to HA
        self.sent = 0
        self.skipped = 0
        self.discovery_sent = 0

    def offer(self, sample: MeterSample) -> None:
        """Publish ``sample`` if its meter's interval has passed and the broker is connected."""
        # Only samples that read every measurement: the poller reads them once per interval_s (by default),
        # so subscribers never get a value older than the message that carries it.
        if not self.settings.enabled or not sample.values or not sample.complete:
            return
        now = self._monotonic()
        last = self._last_sent.get(sample.meter_id)
        # A tenth early is still due: full reads come once per interval_s, and a few milliseconds of jitter
        # must not push a message a whole interval later.
        if last is not None and now - last < self.settings.interval_s * 0.9:
            return
        conn = self._connection()
        if conn is None or not conn.connected.is_set():
            self.skipped += 1
            return
        info = self._meter_info(sample.meter_id)
        try:
            if self.settings.homeassistant:
                self._announce(conn, info, sample)
            conn.publish(
                telemetry_topic(self.gateway_id, sample.meter_id, self._root),
                telemetry_payload(self.gateway_id, info, sample),
                qos=self.settings.qos,
                retain=self.settings.retain,
            )
        except MqttError as exc:
            self.skipped += 1
            log.debug("telemetry of %s not published: %s", sample.meter_id, exc)
            return
        self._last_sent[sample.meter_id] = now
        self.sent += 1

    def _announce(self, conn: MqttConnection, info: MeterInfo, sample: MeterSample) -> None:
        measurements = tuple(sample.values)
        if self._announced.get(sample.meter_id) == measurements:
            return
        for topic, payload in discovery_messages(self.gateway_id, info, list(measurements), self.settings, self._root):
            conn.publish(topic, payload, qos=1, retain=True)
            self.discovery_sent += 1
        self._announced[sample.meter_id] = measurements

    def on_connect(self) -> None:
        """A new session: announce every meter again (a broker without persistence forgot the retained
        configs) and send each meter's next values at once."""
        self._announced.clear()
        self._last_sent.clear()
