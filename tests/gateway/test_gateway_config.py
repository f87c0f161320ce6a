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


# --- environment overrides and credential files --------------------------------------------------


def test_every_scalar_key_can_be_overridden_from_the_environment(tmp_path: Path) -> None:
    env = {
        "GRIDTOKENX_GATEWAY__ID": "gw-env",
        "GRIDTOKENX_BUS__0__BAUDRATE": "19200",  # a Literal[int] from text
        "GRIDTOKENX_BUS__1__PORT": "1502",
        "GRIDTOKENX_METER__2__INTERVAL": "2.5",
        "GRIDTOKENX_METER__0__MEASUREMENTS": '["import_energy", "export_energy"]',  # JSON for a list value
        "gridtokenx_mqtt__host": "broker.lan",  # names are not case-sensitive
        "GRIDTOKENX_MQTT__TLS__CA_FILE": "/etc/ssl/certs/ca.pem",  # nested two levels
        "GRIDTOKENX_OUTBOX__SYNCHRONOUS": "normal",
        "GRIDTOKENX_KEY__PATH": "/srv/gw/device.key",
        "GRIDTOKENX_STATUS__LISTEN": "0.0.0.0:8081",  # enables a section the file leaves out
        "GRIDTOKENX_LOG_LEVEL": "DEBUG",  # not a key path (no __): left to the logger
        "PATH": "/usr/bin",
    }
    origins: dict[str, str] = {}
    config = load_config(EXAMPLE, environ=env, origins=origins)
    bus0, bus1 = config.bus
    assert isinstance(bus0, RtuBusConfig) and bus0.baudrate == 19200 and bus0.device == "/dev/ttyUSB0"
    assert isinstance(bus1, TcpBusConfig) and bus1.port == 1502 and bus1.host == "192.168.1.50"
    assert config.gateway.id == "gw-env" and config.mqtt.gateway_id == "gw-env"
    assert config.meter[2].interval == 2.5 and config.meter[1].interval == 10  # only the one named
    assert config.meter[0].measurements == ("import_energy", "export_energy")
    assert config.mqtt.host == "broker.lan" and config.mqtt.port == 8883  # the file's port stays
    assert config.mqtt.tls is not None and str(config.mqtt.tls.ca_file) == "/etc/ssl/certs/ca.pem"
    assert config.outbox.synchronous == "normal" and config.outbox.max_bytes == 64 * 1024 * 1024
    assert str(config.key.path) == "/srv/gw/device.key"
    assert config.status is not None and config.status.port == 8081
    assert origins["meter.2.interval"] == "environment GRIDTOKENX_METER__2__INTERVAL"
    assert origins["mqtt.tls.ca_file"] == "environment GRIDTOKENX_MQTT__TLS__CA_FILE"


def test_bad_environment_values_are_reported_with_the_variable_that_set_them() -> None:
    env = {
        "GRIDTOKENX_MQTT__PORTT": "1884",
        "GRIDTOKENX_METER__0__INTERVAL": "often",
        "GRIDTOKENX_METER__7__UNIT": "3",
        "GRIDTOKENX_BUS__0__BAUDRATE": "9601",
    }
    with pytest.raises(ConfigError) as info:
        load_config(EXAMPLE, environ=env)
    text = str(info.value)
    assert "4 problems" in text, text
    assert "mqtt.portt: unknown key (from environment GRIDTOKENX_MQTT__PORTT)" in text
    assert 'meter[0] (id "house-main").interval: Input should be a valid number' in text
    assert "(from environment GRIDTOKENX_METER__0__INTERVAL)" in text
    assert "meter[7]: environment GRIDTOKENX_METER__7__… names no entry: there are 3" in text
    assert 'bus[0] (name "rs485-a").baudrate: Input should be 1200' in text


def test_secrets_come_from_credential_files_and_are_never_printed(tmp_path: Path) -> None:
    from gateway.config import effective_config

    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "mqtt__password").write_text("hunter2-from-file\n")
    (credentials / "status__token").write_text("page-token\n")
    config = parse_config(MINIMAL, environ={"CREDENTIALS_DIRECTORY": str(credentials)})
    assert config.mqtt.password is not None and config.mqtt.read_password() == "hunter2-from-file"
    assert config.status is not None and config.status.read_token() == "page-token"
    shown = str(effective_config(config)) + repr(config)
    assert "hunter2" not in shown and "page-token" not in shown and "********" in shown
    # The environment still wins over a credential file.
    env = {"CREDENTIALS_DIRECTORY": str(credentials), "GRIDTOKENX_MQTT__PASSWORD": "from-env"}
    assert parse_config(MINIMAL, environ=env).mqtt.read_password() == "from-env"
