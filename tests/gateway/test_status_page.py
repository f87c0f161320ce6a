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
from tests.support.processes import Proc, gateway_cmd, start_meter_sim, stop_meter_sim, write_gateway_config

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
        # One vocabulary with the MQTT messages: clock and link in the words docs/mqtt.md uses.
        assert m1["clock"] in ("unsynced", "ntp", "gnss") and snapshot["clock"]["source"] in ("unsynced", "ntp")
        assert snapshot["delivery"]["mqtt"] == "online"
        assert snapshot["delivery"]["disk_state"] == "ok" and snapshot["delivery"]["disk"]["free_bytes"] > 0
        assert m1["identity"].startswith("Eastron SDM120-Modbus") and m1["identity_problem"] is None
        assert snapshot["buses"][0]["connections"] == 1

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
        stop_meter_sim(sim)


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


def test_healthz_and_metrics_while_a_meter_dies_and_while_the_broker_is_down(tmp_path: Path, broker: Mosquitto) -> None:
    from tests.gateway.gw_daemon import metric, running_daemon, wait_until

    with running_daemon(tmp_path, broker, sims={"a": [1, 2], "b": [3]}) as d:
        log = d.gateway.log
        code, body = wait_until("healthz 200", lambda: (r := d.get("/healthz"))[0] == 200 and r, 30, log)
        assert body.startswith("ok: 3 meters online") and "broker connected" in body

        d.kill_sim("b")
        code, body = wait_until("healthz 503 naming m3", lambda: (r := d.get("/healthz"))[0] == 503 and r, 20, log)
        assert "Meter m3 is offline" in body and "m1" not in body, body
        _, text = d.get("/metrics")
        assert metric(text, "gridtokenx_meter_up", '{meter="m3"}') == 0
        assert metric(text, "gridtokenx_meter_up", '{meter="m1"}') == 1
        assert (metric(text, "gridtokenx_meter_poll_failures_total", '{meter="m3"}') or 0) >= 2
        assert (metric(text, "gridtokenx_meter_polls_total", '{meter="m1"}') or 0) >= 2
        assert metric(text, "gridtokenx_mqtt_connected") == 1
        assert metric(text, "gridtokenx_healthy") == 0
        assert (metric(text, "process_resident_memory_bytes") or 0) > 10e6
        assert "# TYPE gridtokenx_readings_signed_total counter" in text

        broker.stop()
        code, body = wait_until(
            "healthz naming the broker", lambda: (r := d.get("/healthz"))[0] == 503 and "broker" in r[1] and r, 20, log
        )
        assert f"MQTT broker 127.0.0.1:{broker.port} disconnected" in body and "Meter m3 is offline" in body
        time.sleep(1.5)
        _, text = d.get("/metrics")
        assert metric(text, "gridtokenx_mqtt_connected") == 0
        assert (metric(text, "gridtokenx_outbox_pending_readings") or 0) > 0
        assert (metric(text, "gridtokenx_outbox_oldest_age_seconds") or 0) > 0
        assert (metric(text, "gridtokenx_outbox_bytes") or 0) > 0

        broker.start()
        wait_until(
            "reconnected", lambda: metric(d.get("/metrics")[1], "gridtokenx_mqtt_reconnects_total") == 1, 20, log
        )
        code, body = d.get("/healthz")
        assert code == 503 and "broker" not in body and "Meter m3" in body  # the meter is still dead
        assert d.gateway.terminate() == 0


def test_a_bearer_token_guards_everything_but_healthz(tmp_path: Path, broker: Mosquitto) -> None:
    from tests.gateway.gw_daemon import running_daemon, wait_until

    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    with running_daemon(tmp_path, broker, sims={"a": [1]}, status=f'token_file = "{token_file}"') as d:
        wait_until("healthz", lambda: d.get("/healthz")[0] == 200, 30, d.gateway.log)
        for path in ("/", "/status.json", "/metrics"):
            assert d.get(path)[0] == 401
            assert d.get(path, headers={"Authorization": "Bearer wrong"})[0] == 401
            assert d.get(path, headers={"Authorization": "Bearer s3cret-token"})[0] == 200
        assert d.get("/?token=s3cret-token")[0] == 200  # a phone's browser cannot send the header
        body = d.get("/status.json", headers={"Authorization": "Bearer s3cret-token"})[1]
        assert "s3cret-token" not in body and "s3cret-token" not in d.gateway.log()
