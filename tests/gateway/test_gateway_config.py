"""The configuration is validated whole: every problem in one message naming entry and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import RtuBusConfig, TcpBusConfig, load_config, parse_config
from gateway.errors import ConfigError
from gateway.poller import MeterSpec

EXAMPLE = Path(__file__).resolve().parents[2] / "systemd" / "gateway.example.toml"

MINIMAL = """
[gateway]
id = "gw1"

[[bus]]
name = "a"
type = "rtu"
device = "/dev/ttyUSB0"

[[meter]]
id = "m1"
model = "sdm120"
unit = 1
bus = "a"
"""


def test_shipped_example_is_valid() -> None:
    config = load_config(EXAMPLE)
    assert config.gateway.id == "gw-bangkok-01"
    assert {b.name: type(b) for b in config.bus} == {"rs485-a": RtuBusConfig, "lan": TcpBusConfig}
    assert [m.model for m in config.meter] == ["sdm630", "sdm120", "sunspec"]
    heatpump = MeterSpec.from_config(config.meter[1], config.bus_by_name("rs485-a"))
    assert heatpump.response_timeout == 0.6  # inherited from the bus
    assert [m.value for m in heatpump.measurements or ()] == ["import_energy", "export_energy", "power_total"]


def test_example_delivery_sections_are_typed_fields_of_the_one_model() -> None:
    config = load_config(EXAMPLE, environ={})
    assert config.mqtt.gateway_id == "gw-bangkok-01"  # taken from [gateway] id
    assert config.mqtt.port == 8883 and config.mqtt.tls is not None
    assert config.outbox.max_bytes == 64 * 1024 * 1024
    assert str(config.key.path) == "/var/lib/gridtokenx/device.key"
    assert config.status is None  # the page is off unless configured


def test_defaults() -> None:
    config = parse_config(MINIMAL)
    bus = config.bus[0]
    assert isinstance(bus, RtuBusConfig)
    assert (bus.baudrate, bus.parity, bus.stopbits, bus.timeout, bus.inter_frame_gap) == (9600, "N", 1, 0.6, None)
    meter = config.meter[0]
    assert (meter.interval, meter.retries, meter.offline_after) == (10.0, 2, 3)
    assert meter.effective_offline_interval() == 30.0


def test_delivery_sections_are_validated_with_the_rest() -> None:
    config = parse_config(MINIMAL + '\n[mqtt]\nhost = "localhost"\n[outbox]\npath = "/tmp/x.db"\n[key]\n[status]\n')
    assert config.mqtt.host == "localhost" and str(config.outbox.path) == "/tmp/x.db"
    assert config.status is not None and config.status.listen == "127.0.0.1:8080"
    with pytest.raises(ConfigError) as info:
        parse_config(MINIMAL.replace('id = "m1"', 'id = "m 1"') + '[mqtt]\nport = 0\n[status]\nlisten = "8080"\n')
    text = str(info.value)
    assert "2 problems" not in text and "3 problems" in text, text  # one validation, every section
    assert 'meter[0] (id "m 1").id' in text and "mqtt.port:" in text and "status.listen:" in text


def test_every_error_is_reported_at_once() -> None:
    text = """
[gateway]
id = "gw1"
colour = "blue"

[[bus]]
name = "a"
type = "rtu"
device = "/dev/ttyUSB0"
baudrate = 9601

[[bus]]
name = "b"
type = "tcp"

[[bus]]
name = "c"
type = "can"

[[meter]]
id = "has space"
model = "sdm999"
unit = 248
bus = "a"

[[meter]]
id = "m2"
model = "sdm120"
unit = 1
bus = "nowhere"
intervall = 5

[[meter]]
id = "m3"
model = "sdm120"
unit = 1
bus = "a"

[[meter]]
id = "m4"
model = "sdm120"
unit = 1
bus = "a"
measurements = ["voltage_l3", "volts"]
"""
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="gw.toml")
    message = str(info.value)
    expected = [
        "gw.toml: ",
        "gateway.colour: unknown key",
        'bus[0] (name "a").baudrate: Input should be 1200',
        'bus[1] (name "b").host: required key is missing',
        'bus[2] (name "c")',  # unknown bus type
        "meter[0] (id \"has space\").id: 'has space' must be 1-16 characters",
        "meter[0] (id \"has space\").model: unknown model 'sdm999'; known: sdm120, sdm630, sunspec",
        'meter[0] (id "has space").unit: Input should be less than or equal to 247',
        'meter[1] (id "m2").intervall: unknown key',
        'meter[1] (id "m2").bus: no bus named "nowhere"',
        'meter[3] (id "m4").measurements: unknown measurement(s) volts',
        'meter[3] (id "m4").unit: unit 1 on bus "a" is already used by meter[2] (id "m3")',
    ]
    for fragment in expected:
        assert fragment in message, fragment
    assert message.count("\n") >= len(expected) - 1


def test_duplicate_ids_and_names() -> None:
    text = MINIMAL + (
        '\n[[bus]]\nname = "a"\ntype = "tcp"\nhost = "h"\n'
        '[[meter]]\nid = "m1"\nmodel = "sdm630"\nunit = 2\nbus = "a"\n'
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert 'bus: name "a" is used by 2 buses' in str(info.value)
    assert 'meter: id "m1" is used by 2 meters' in str(info.value)


def test_model_must_provide_selected_measurements() -> None:
    with pytest.raises(ConfigError, match="model sdm120 does not provide voltage_l3"):
        parse_config(MINIMAL + 'measurements = ["voltage_l3"]\n')


def test_toml_syntax_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_config("[gateway\nid=1")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match="required key is missing"):
        parse_config("")
