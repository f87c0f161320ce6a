"""``gridtokenx gateway check-config FILE`` as an operator runs it: the example is valid and printed
with defaults and secrets masked; broken files exit 2 naming every problem; nothing is touched."""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
from pathlib import Path

from tests.support.processes import gateway_cmd

EXAMPLE = Path(__file__).resolve().parents[2] / "systemd" / "gateway.example.toml"


def _check(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("GRIDTOKENX_")}
    return subprocess.run(
        gateway_cmd("check-config", *args), capture_output=True, text=True, timeout=60, env={**clean, **(env or {})}
    )


def test_the_example_is_valid_and_printed_as_toml_with_defaults() -> None:
    done = _check(str(EXAMPLE))
    assert done.returncode == 0, done.stderr
    effective = tomllib.loads(done.stdout)  # the output is TOML the daemon would accept
    assert effective["gateway"]["id"] == "gw-bangkok-01"
    assert effective["mqtt"]["gateway_id"] == "gw-bangkok-01" and effective["mqtt"]["batch_size"] == 500  # a default
    assert [m["id"] for m in effective["meter"]] == ["house-main", "heatpump", "pv-inverter"]
    assert effective["outbox"]["synchronous"] == "full"
    assert "# [status] not configured" in done.stdout
    assert "warning: key file /var/lib/gridtokenx/device.key does not exist" in done.stderr  # a warning only
    assert "Traceback" not in done.stderr


def test_environment_overrides_and_masked_secrets_are_shown(tmp_path: Path) -> None:
    env = {
        "GRIDTOKENX_MQTT__HOST": "broker.lan",
        "GRIDTOKENX_MQTT__PASSWORD": "hunter2",
        "GRIDTOKENX_STATUS__TOKEN": "t0k",
    }
    done = _check(str(EXAMPLE), env=env)
    assert done.returncode == 0, done.stderr
    assert 'host = "broker.lan"  # from environment GRIDTOKENX_MQTT__HOST' in done.stdout
    assert "hunter2" not in done.stdout + done.stderr and "t0k" not in done.stdout + done.stderr
    assert 'password = "********"' in done.stdout and 'token = "********"' in done.stdout
    as_json = json.loads(_check(str(EXAMPLE), "--json", env=env).stdout)
    assert as_json["mqtt"]["password"] == "********" and as_json["status"]["listen"] == "127.0.0.1:8080"


def test_broken_files_exit_2_with_every_problem(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text(
        EXAMPLE.read_text()
        .replace('baudrate = 9600 ', "baudrate = 9601 ")
        .replace('bus = "lan"', 'bus = "lann"')
        .replace("max_bytes = 67108864", "max_bytes = 10")
        .replace("[key]", '[key]\ncolour = "red"')
    )
    done = _check(str(broken))
    assert done.returncode == 2 and done.stdout == ""
    for fragment in (
        "4 problems",
        'bus[0] (name "rs485-a").baudrate',
        'meter[2] (id "pv-inverter").bus: no bus named "lann"',
        "outbox.max_bytes: Input should be greater than or equal to 262144",
        "key.colour: unknown key",
    ):
        assert fragment in done.stderr, (fragment, done.stderr)
    not_toml = tmp_path / "not.toml"
    not_toml.write_text("[gateway\n")
    done = _check(str(not_toml))
    assert done.returncode == 2 and "not valid TOML" in done.stderr
    done = _check(str(tmp_path / "missing.toml"))
    assert done.returncode == 2 and "cannot read" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "state").exists()  # nothing was created
