"""The technician's status page, served by a real ``gateway run`` polling a real meter-sim: meter states,
outbox and MQTT figures, never the key; read-only."""

from __future__ import annotations

import http.client
import json
import subprocess
import time
from pathlib import Path

import pytest

from gateway.keys import load_key
from tests.support import fixtures
from tests.support.mosquitto import Mosquitto, free_port
from tests.support.processes import Proc, gateway_cmd, start_meter_sim, write_gateway_config

pytestmark = [pytest.mark.broker, pytest.mark.modbus]
broker = fixtures.broker


def _get(port: int, path: str, method: str = "GET") -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def test_status_page_shows_meters_outbox_and_link_but_never_the_key(tmp_path: Path, broker: Mosquitto) -> None:
    state = tmp_path / "state"
    keygen = subprocess.run(gateway_cmd("keygen", "--out", str(state / "device.key")), capture_output=True, timeout=30)
    assert keygen.returncode == 0, keygen.stderr
    key = load_key(state / "device.key")
    sim, sim_port = start_meter_sim([1, 2], tmp_path / "sim.log")
    port = free_port()
    config = write_gateway_config(
        tmp_path / "gateway.toml", gateway_id="gw-status", sim_port=sim_port, units=[1, 2, 3],  # unit 3: no meter
        broker_port=broker.port, state=state, interval=0.2,
    )
    config.write_text(config.read_text() + f'\n[status]\nlisten = "127.0.0.1:{port}"\n')
    gateway = Proc(gateway_cmd("run", "--config", str(config)), tmp_path / "gateway.log")
    try:
        deadline = time.monotonic() + 30
        snapshot: dict = {}
        while time.monotonic() < deadline:
            try:
                code, body = _get(port, "/status.json")
            except OSError:
                time.sleep(0.2)
                continue
            snapshot = json.loads(body)
            states = {m["meter_id"]: m["state"] for m in snapshot["meters"]}
            if code == 200 and states == {"m1": "online", "m2": "online", "m3": "offline"}:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"meters never settled: {snapshot}\n{gateway.log()[-2000:]}")
        assert snapshot["gateway_id"] == "gw-status"
        assert snapshot["key_fingerprint"] == key.fingerprint
        m1 = next(m for m in snapshot["meters"] if m["meter_id"] == "m1")
        assert m1["import_wh"] > 0 and m1["successes"] >= 1
        m3 = next(m for m in snapshot["meters"] if m["meter_id"] == "m3")
        assert m3["failures"] >= 1 and m3["last_error"]
        assert snapshot["delivery"]["signed"] >= 2
        assert "connected" in snapshot["delivery"]

        code, page = _get(port, "/")
        assert code == 200 and "m1" in page and "offline" in page and key.fingerprint in page
        seed_hex = (state / "device.key").read_text().split()[-1]  # the file's last line is the seed in hex
        assert len(seed_hex) == 64
        for body in (page, json.dumps(snapshot)):
            assert seed_hex not in body.lower()
        assert _get(port, "/status.json", method="POST")[0] == 405
        assert _get(port, "/device.key")[0] == 404
        assert gateway.terminate() == 0  # the page closes with the daemon, which exits cleanly
    finally:
        if gateway.running:
            gateway.proc.kill()
        sim.kill()
        sim.wait(5)
        if sim.stdout is not None:
            sim.stdout.close()


def test_a_bad_listen_address_is_a_configuration_error_naming_the_key(tmp_path: Path) -> None:
    from gateway.config import load_config
    from gateway.errors import ConfigError

    config = write_gateway_config(
        tmp_path / "gateway.toml", gateway_id="gw-status", sim_port=1502, units=[1], broker_port=1883,
        state=tmp_path, interval=1,
    )
    config.write_text(config.read_text() + '\n[status]\nlisten = "8080"\n')
    with pytest.raises(ConfigError, match=r"status\.listen: listen must be HOST:PORT"):
        load_config(config, environ={})
