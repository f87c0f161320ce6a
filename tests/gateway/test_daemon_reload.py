"""``systemctl reload`` (SIGHUP) on a real ``gateway run``: an invalid configuration is refused with
the reason (log and STATUS) and the running one stays; an unchanged one is a no-op; a valid changed
one is applied without losing a polled reading; SIGTERM afterwards still exits 0."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pytest

from tests.gateway.gw_daemon import running_daemon, wait_until
from tests.gateway.test_sd_notify import NotifySocket
from tests.support import fixtures
from tests.support.mosquitto import Mosquitto

pytestmark = [pytest.mark.broker, pytest.mark.modbus]
broker = fixtures.broker


def test_sighup_applies_a_valid_configuration_and_keeps_the_running_one_otherwise(
    tmp_path: Path, broker: Mosquitto
) -> None:
    notify = NotifySocket()
    try:
        with running_daemon(
            tmp_path, broker, sims={"a": [1, 2]}, env={"NOTIFY_SOCKET": notify.path}, interval=0.3
        ) as d:
            log = d.gateway.log
            wait_until("READY", lambda: notify.times("READY"), 30, log)
            meters = lambda: [m["meter_id"] for m in json.loads(d.get("/status.json")[1])["meters"]]  # noqa: E731
            assert meters() == ["m1", "m2"]
            good = d.config.read_text()

            broken = good.replace("interval = 0.3", "interval = -1", 1).replace("[outbox]", "[outbox]\nextra = 1")
            d.config.write_text(broken)
            d.gateway.proc.send_signal(signal.SIGHUP)
            wait_until("the refusal", lambda: "configuration reload refused" in log(), 15, log)
            assert "interval: Input should be greater than or equal to 0.05" in log()
            assert "outbox.extra: unknown key" in log()  # every problem, not only the first
            refused = wait_until("STATUS", lambda: [s for s in notify.statuses() if "REFUSED" in s], 10, log)
            assert "running one kept" in refused[0]
            assert any("RELOADING" in m for _, m in notify.messages)
            assert d.gateway.running and meters() == ["m1", "m2"]

            d.config.write_text(good)
            d.gateway.proc.send_signal(signal.SIGHUP)
            wait_until("unchanged", lambda: "configuration reloaded: unchanged" in log(), 15, log)

            readies = len(notify.times("READY"))
            d.config.write_text(good.replace('[[meter]]\nid = "m2"', '[[meter]]\nid = "m2b"'))
            d.gateway.proc.send_signal(signal.SIGHUP)
            wait_until("the new meter list", lambda: meters() == ["m1", "m2b"], 30, log)
            wait_until("READY after the reload", lambda: len(notify.times("READY")) > readies, 30, log)
            text = log()
            assert "configuration changed" in text
            # Nothing polled was lost: the new generation starts with what the old one left pending.
            stopped = [int(n) for n in re.findall(r"stopped: (\d+) readings pending", text)]
            started = [int(n) for n in re.findall(r"epoch \d+, (\d+) pending", text)]
            assert len(stopped) == 1 and len(started) == 2 and started[1] == stopped[0] > 0, (stopped, started)
            assert d.gateway.terminate() == 0
    finally:
        notify.close()
