"""Every measured value for MQTT subscribers, and Home Assistant discovery, through a real Mosquitto.

A simulated SDM630 is polled by the real poller and service; a plain paho subscriber (no code of ours)
reads the telemetry topic and the discovery configs. The messages are checked against the documented
schemas in docs/schemas/ (the ones docs/mqtt.md points to)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import paho.mqtt.client as paho
import pytest
from gwtest_helpers import spec
from meter_sim.meter import SimMeter
from meter_sim.server import serve_tcp
from paho.mqtt.enums import CallbackAPIVersion

from gateway.keys import generate_key
from gateway.measurements import Measurement
from gateway.mqtt_publisher import MqttSettings
from gateway.outbox import OutboxSettings
from gateway.poller import Poller
from gateway.service import GatewayService
from gateway.telemetry import MeterInfo, TelemetrySettings
from gateway.transport import TcpBus
from tests.support import fixtures
from tests.support.ackkey import backend_pub
from tests.support.mosquitto import Mosquitto

pytestmark = [pytest.mark.broker, pytest.mark.modbus, pytest.mark.timeout(60)]
broker = fixtures.broker

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"
CONFIGURED = (
    "voltage_l1", "current_l1", "power_l1", "power_total", "power_factor", "frequency",
    "reactive_power_total", "import_energy", "export_energy", "import_reactive_energy", "thd_voltage_l1",
)


async def _until(done: Callable[[], bool], within: float = 5.0) -> None:
    """Poll a condition another thread (paho's) makes true."""
    deadline = time.monotonic() + within
    while not done() and time.monotonic() < deadline:  # noqa: ASYNC110 - set from paho's thread
        await asyncio.sleep(0.05)


class Subscriber:
    """Any MQTT client: collects (topic, payload, retained) of what it is subscribed to."""

    def __init__(self, port: int, *topics: str) -> None:
        self.messages: list[tuple[str, dict[str, Any], bool]] = []
        self._lock = threading.Lock()
        self.client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, *_: [c.subscribe(t, 1) for t in topics]
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((message.topic, json.loads(message.payload), bool(message.retain)))

    def on(self, prefix: str) -> list[tuple[str, dict[str, Any], bool]]:
        with self._lock:
            return [m for m in self.messages if m[0].startswith(prefix)]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def _run_gateway(tmp_path: Path, broker: Mosquitto, telemetry: TelemetrySettings, seconds: float,
                       subscriber: Subscriber | None = None) -> None:
    meter = SimMeter("sdm630", 1)
    async with serve_tcp([meter]) as server:
        bus = TcpBus("lan", "127.0.0.1", server.port)
        specs = [spec("main", "sdm630", 1, "lan", interval=0.1, response_timeout=1.0,
                      measurements=tuple(Measurement.by_name(m) for m in CONFIGURED))]
        async with Poller([bus], specs) as poller:

            def info(meter_id: str) -> MeterInfo:
                identity = poller.meter(meter_id).identity
                assert identity is not None
                return MeterInfo(meter_id, "sdm630", identity.manufacturer, identity.product, identity.serial)

            service = GatewayService(
                key=generate_key(tmp_path / "device.key"),
                mqtt=MqttSettings(host="127.0.0.1", port=broker.port, gateway_id="gw-tel",
                                  backend_key_file=backend_pub(tmp_path)),
                outbox=OutboxSettings(path=tmp_path / "o.db"),
                samples=poller,
                telemetry=telemetry,
                meter_info=info,
            )
            task = asyncio.create_task(service.run())
            await asyncio.sleep(seconds)
            service.stop()
            await task


async def test_a_subscriber_gets_every_configured_measurement_with_its_unit(tmp_path: Path, broker: Mosquitto) -> None:
    subscriber = Subscriber(broker.port, "gridtokenx/v1/gw-tel/telemetry/#", "homeassistant/#")
    try:
        await _run_gateway(tmp_path, broker, TelemetrySettings(interval_s=0.5), 2.6)
        messages = subscriber.on("gridtokenx/v1/gw-tel/telemetry/main")
    finally:
        subscriber.close()
    schema = json.loads((SCHEMAS / "telemetry.schema.json").read_text())
    # Polled every 0.1 s, published at most every 0.5 s: rate-limited, not one per poll.
    assert 4 <= len(messages) <= 7, len(messages)
    for _, message, _ in messages:
        jsonschema.validate(message, schema)
        assert set(message["values"]) == set(CONFIGURED)
        assert message["units"] == {name: Measurement.by_name(name).unit for name in CONFIGURED}
        assert message["meter"] == "main" and message["model"] == "sdm630" and not message["meter_error"]
        assert 200 < message["values"]["voltage_l1"] < 260 and 49 < message["values"]["frequency"] < 51
        assert message["values"]["import_energy"] > 4_800_000  # Wh, as the vocabulary says
    assert [m[1]["ts_ms"] for m in messages] == sorted(m[1]["ts_ms"] for m in messages)
    assert not subscriber.on("homeassistant/")  # discovery is off unless asked for
    # Retained: a subscriber that comes later gets the last values at once.
    late = Subscriber(broker.port, "gridtokenx/v1/gw-tel/telemetry/main")
    try:
        await _until(lambda: bool(late.messages))
        assert late.messages and late.messages[0][2] is True
        assert late.messages[0][1]["ts_ms"] == messages[-1][1]["ts_ms"]
    finally:
        late.close()


async def test_home_assistant_discovery_validates_and_puts_energy_in_the_dashboard(
    tmp_path: Path, broker: Mosquitto
) -> None:
    subscriber = Subscriber(broker.port, "homeassistant/#", "gridtokenx/v1/gw-tel/telemetry/#")
    try:
        await _run_gateway(tmp_path, broker, TelemetrySettings(interval_s=1.0, homeassistant=True), 1.5)
        configs = subscriber.on("homeassistant/sensor/")
        telemetry = subscriber.on("gridtokenx/v1/gw-tel/telemetry/main")
    finally:
        subscriber.close()
    schema = json.loads((SCHEMAS / "homeassistant-sensor-discovery.schema.json").read_text())
    by_measurement: dict[str, dict[str, Any]] = {}
    for topic, config, _ in configs:
        jsonschema.validate(config, schema)
        assert topic.startswith("homeassistant/sensor/gridtokenx_gw-tel/main_") and topic.endswith("/config")
        name = config["value_template"].split("value_json.values.")[1].split()[0].rstrip(")")
        by_measurement[name] = config
    assert set(by_measurement) == set(CONFIGURED)  # one sensor per measured value
    assert len({c["unique_id"] for c in by_measurement.values()}) == len(CONFIGURED)
    for name in ("import_energy", "export_energy"):
        energy = by_measurement[name]
        assert (energy["device_class"], energy["state_class"], energy["unit_of_measurement"]) == (
            "energy", "total_increasing", "Wh")
    assert by_measurement["import_reactive_energy"]["state_class"] == "total_increasing"
    assert (by_measurement["power_total"]["device_class"], by_measurement["power_total"]["unit_of_measurement"]) == (
        "power", "W")
    assert by_measurement["voltage_l1"]["device_class"] == "voltage"
    assert by_measurement["power_factor"]["unit_of_measurement"] == "%"
    device = by_measurement["power_total"]["device"]
    assert device["manufacturer"] == "Eastron" and device["model"] == "SDM630-Modbus"
    assert device["serial_number"] == "24000001"
    # The state topic the configs name is where the values are, under the template's path.
    assert telemetry and {c["state_topic"] for c in by_measurement.values()} == {telemetry[0][0]}
    for name, config in by_measurement.items():
        assert name in telemetry[0][1]["values"], name
        assert f"value_json.values.{name}" in config["value_template"]
    # Retained: Home Assistant started later still finds every sensor.
    late = Subscriber(broker.port, "homeassistant/#")
    try:
        await _until(lambda: len(late.messages) >= len(CONFIGURED))
        assert len(late.messages) == len(CONFIGURED) and all(retained for _, _, retained in late.messages)
    finally:
        late.close()
