"""``gateway run`` / ``gateway keygen`` as an operator meets them: clear refusals, exit code 2, no traceback."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from gateway.config import parse_config
from gateway.errors import ConfigError
from tests.support.ackkey import backend_pub
from tests.support.processes import gateway_cmd

CONFIG = """
[gateway]
id = "gw-cli"
[[bus]]
name = "lan"
type = "tcp"
host = "127.0.0.1"
port = 1
[[meter]]
id = "m1"
model = "sdm120"
unit = 1
bus = "lan"
"""


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(gateway_cmd(*args), capture_output=True, text=True, timeout=60)


def test_keygen_prints_public_key_and_commissioning_line_but_never_the_secret(tmp_path: Path) -> None:
    key = tmp_path / "state" / "device.key"
    done = _run("keygen", "--out", str(key), "--gateway-id", "gw-cli")
    assert done.returncode == 0, done.stderr
    seed = next(ln for ln in key.read_text().splitlines() if not ln.startswith("#"))
    assert seed not in done.stdout + done.stderr
    assert oct(os.stat(key).st_mode & 0o777) == "0o600"
    assert "fingerprint:" in done.stdout and "gridtokenx backend add-gateway --id gw-cli --public-key" in done.stdout
    again = _run("keygen", "--out", str(key))
    assert again.returncode == 2 and "already exists" in again.stderr and "Traceback" not in again.stderr


def test_run_refuses_a_world_readable_key_and_says_why(tmp_path: Path) -> None:
    key = tmp_path / "device.key"
    assert _run("keygen", "--out", str(key)).returncode == 0
    os.chmod(key, 0o644)
    config = tmp_path / "gateway.toml"
    config.write_text(
        CONFIG + f'[key]\npath = "{key}"\n[outbox]\npath = "{tmp_path}/o.db"\n'
        f'[mqtt]\nbackend_key_file = "{backend_pub(tmp_path)}"\n'
    )
    done = _run("run", "--config", str(config))
    assert done.returncode == 2
    assert "mode 0644" in done.stderr and f"chmod 600 {key}" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "o.db").exists()  # refused before touching anything


def test_daemon_sections_are_validated_together() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(
            CONFIG + '[mqtt]\nport = 0\ncolour = "red"\n[outbox]\nmax_bytes = 10\n[key]\npth = "x"\n',
            source="gw.toml",
            environ={},
        )
    text = str(info.value)
    assert text.startswith("gw.toml: 4 problems")
    for fragment in ("mqtt.port:", "mqtt.colour: unknown key", "outbox.max_bytes:", "key.pth: unknown key"):
        assert fragment in text, text


def test_gateway_id_comes_from_the_gateway_section() -> None:
    settings = parse_config(CONFIG + '[mqtt]\nhost = "broker"\n', environ={})
    assert settings.mqtt.gateway_id == "gw-cli" and settings.mqtt.effective_client_id == "gridtokenx-gw-gw-cli"
    assert settings.outbox.synchronous == "full"
