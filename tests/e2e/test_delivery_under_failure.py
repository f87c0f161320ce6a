"""End to end with real processes: meter-sim → ``gateway run`` → Mosquitto → ``backend run`` → PostgreSQL.

The broker is stopped and restarted, the backend is stopped and restarted, and the gateway is killed
with SIGKILL at random moments many times. At the end the backend must hold every reading the gateway
ever committed exactly once, with valid signatures and gap-free sequence numbers per meter.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from backend.storage import open_storage
from gateway.keys import load_key
from tests.support import fixtures
from tests.support.inprocess import check_exactly_once, retained
from tests.support.mosquitto import Mosquitto
from tests.support.processes import (
    Proc,
    backend_cmd,
    gateway_cmd,
    start_meter_sim,
    stop_meter_sim,
    write_backend_config,
    write_gateway_config,
)

pytestmark = [pytest.mark.broker, pytest.mark.postgres, pytest.mark.modbus]
pg_url = fixtures.pg_url

GW = "gw-e2e"
UNITS = [1, 2, 3, 4]


@dataclass
class Rig:
    tmp: Path
    broker: Mosquitto
    sim: subprocess.Popen[str]
    gateway_config: Path
    backend_config: Path
    state: Path
    url: str

    procs: list[Proc]

    def gateway(self) -> Proc:
        # A fresh log per run, so "connected" below is about this run.
        n = sum(1 for p in self.procs if "gateway" in p.log_path.name)
        return self._start(
            Proc(gateway_cmd("run", "--config", str(self.gateway_config)), self.tmp / f"gateway-{n}.log")
        )

    def backend(self) -> Proc:
        return self._start(Proc(backend_cmd("run", "--config", str(self.backend_config)), self.tmp / "backend.log"))

    def _start(self, proc: Proc) -> Proc:
        self.procs.append(proc)
        return proc

    def outbox(self) -> tuple[int, dict[str, int]]:
        """(rows still in the outbox, committed readings per meter) — read-only, safe while running."""
        with sqlite3.connect(f"file:{self.state / 'outbox.db'}?mode=ro", uri=True, timeout=5) as db:
            pending = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
            counters = dict(db.execute("SELECT meter_id, next_counter FROM counters").fetchall())
        return pending, counters


@pytest.fixture
def rig(tmp_path: Path, pg_url: str) -> Iterator[Rig]:
    state = tmp_path / "state"
    keygen = subprocess.run(
        gateway_cmd("keygen", "--out", str(state / "device.key"), "--gateway-id", GW),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert keygen.returncode == 0, keygen.stderr
    public_hex = load_key(state / "device.key").public_key.hex()
    assert f"--public-key {public_hex}" in keygen.stdout
    with Mosquitto(tmp_path / "broker") as broker:
        sim, sim_port = start_meter_sim(UNITS, tmp_path / "sim.log")
        procs: list[Proc] = []
        try:
            backend_config = write_backend_config(tmp_path / "backend.toml", url=pg_url, broker_port=broker.port)
            add = subprocess.run(
                backend_cmd("add-gateway", "--config", str(backend_config), "--id", GW, "--public-key", public_hex),
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert add.returncode == 0, add.stderr
            gateway_config = write_gateway_config(
                tmp_path / "gateway.toml",
                gateway_id=GW,
                sim_port=sim_port,
                units=UNITS,
                broker_port=broker.port,
                state=state,
            )
            yield Rig(tmp_path, broker, sim, gateway_config, backend_config, state, pg_url, procs)
        finally:
            for proc in procs:
                proc.kill()
            stop_meter_sim(sim)


async def _backend_count(url: str) -> int:
    async with await open_storage(url) as storage:
        return await storage.reading_count(GW)


def _wait(predicate, within_s: float, what: str, logs: list[Proc] = ()) -> None:  # type: ignore[no-untyped-def,assignment]
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    tails = "\n".join(f"--- {p.log_path.name}\n{p.log()[-3000:]}" for p in logs)
    raise AssertionError(f"timed out after {within_s} s waiting for {what}\n{tails}")


def _drain_and_verify(rig: Rig, gateway: Proc, backend: Proc) -> dict[str, list[int]]:
    """Stop the meters, let the gateway empty its outbox, stop everything, compare both ends."""
    rig.sim.kill()
    rig.sim.wait(5)
    _wait(lambda: "MQTT connected" in gateway.log(), 30, "the gateway to connect", [gateway, backend])
    # Empty once is not enough: a reading polled just before the meters died may still be on its way into
    # the outbox. Empty, with counters that have stood still for 2 s.
    quiet: dict[str, object] = {"counters": None, "since": 0.0}

    def drained_and_quiet() -> bool:
        pending, counters = rig.outbox()
        now = time.monotonic()
        if pending or counters != quiet["counters"]:
            quiet.update(counters=counters, since=now)
            return False
        return now - float(quiet["since"]) >= 2.0  # type: ignore[arg-type]

    _wait(drained_and_quiet, 60, "the gateway outbox to drain and stay quiet", [gateway, backend])
    assert gateway.terminate() == 0, gateway.log()[-3000:]
    assert backend.terminate() == 0, backend.log()[-3000:]
    pending, committed = rig.outbox()
    assert pending == 0 and committed == quiet["counters"], "the gateway committed more after it went quiet"

    async def stored():  # type: ignore[no-untyped-def]
        async with await open_storage(rig.url) as storage:
            return await storage.readings(GW)

    rows = asyncio.run(stored())
    public_key = load_key(rig.state / "device.key").public_key
    by_meter = check_exactly_once(rows, public_key, committed)
    assert set(by_meter) == {f"m{u}" for u in UNITS}
    return by_meter


@pytest.mark.timeout(150)
def test_broker_and_backend_outages(rig: Rig) -> None:
    backend, gateway = rig.backend(), rig.gateway()
    count = lambda: asyncio.run(_backend_count(rig.url))  # noqa: E731
    _wait(lambda: count() > 50, 30, "first readings at the backend", [gateway, backend])

    rig.broker.stop()  # broker down: the gateway keeps polling into its outbox
    time.sleep(3)
    pending_during_outage = rig.outbox()[0]
    rig.broker.start()
    before = count()
    _wait(
        lambda: count() > before + pending_during_outage // 2,
        30,
        "delivery after the broker restart",
        [gateway, backend],
    )

    assert backend.terminate() == 0  # backend down: acks stop, readings wait at broker and gateway
    time.sleep(3)
    assert rig.outbox()[0] > 0
    backend = rig.backend()
    before = count()
    _wait(lambda: count() > before + 50, 30, "delivery after the backend restart", [gateway, backend])

    by_meter = _drain_and_verify(rig, gateway, backend)
    assert sum(map(len, by_meter.values())) > 200


@pytest.mark.timeout(170)
def test_gateway_killed_at_random_moments(rig: Rig) -> None:
    rng = random.Random(20260125)
    backend = rig.backend()
    kills = 0
    lwt_checked = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and kills < 15:  # enough moments to hit start-up, mid-batch and mid-ack
        gateway = rig.gateway()
        time.sleep(rng.uniform(0.3, 2.5))  # sometimes mid start-up, sometimes mid batch or mid ack
        gateway.kill()
        kills += 1
        if not lwt_checked and kills >= 3 and rig.outbox()[0] >= 0:
            status = retained(rig.broker.port, f"gridtokenx/v1/{GW}/status")
            if status is not None:  # the gateway got as far as connecting at least once
                assert status["state"] == "offline", status  # the Last Will, published by the broker
                lwt_checked = True
    assert kills >= 12
    assert lwt_checked
    gateway = rig.gateway()
    by_meter = _drain_and_verify(rig, gateway, backend)
    assert sum(map(len, by_meter.values())) > 100
