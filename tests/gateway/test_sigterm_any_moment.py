"""SIGTERM at random moments: the real ``gateway run`` always exits 0 within its deadline, outbox intact.

(a) 10 Modbus TCP meters polled every 0.2 s behind one endpoint, one of them answering late (after the
gateway's timeout, so its answers arrive while other requests are outstanding) and one sending an
unsolicited frame after every answer; (b) a mixed configuration: TCP (an SDM630 and a late SunSpec
meter) and an RS-485 line on a pty pair (SDM120, a late SDM630, an SDM120 sending unsolicited frames,
a SunSpec meter). Each run starts a gateway, lets it poll for a random time, sends SIGTERM, and checks:
exit status 0, before cli_run.SHUTDOWN_DEADLINE_S, a "stopped" line, and an outbox that passes SQLite's
integrity check and holds every committed reading exactly once (no broker-side ack happens here, so
nothing may be missing), each signature valid. Two gateways run side by side to keep the test short;
bench/bench_sigterm_soak.py does the same hundreds of times.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from gwtest_helpers import meter_sim_process
from meter_sim.serial_pair import SerialPair

from gateway.cli_run import SHUTDOWN_DEADLINE_S
from gateway.keys import load_key
from gateway.outbox import COUNTER_BITS
from gridtokenx.reading import verify
from tests.support import fixtures
from tests.support.ackkey import backend_pub
from tests.support.mosquitto import Mosquitto
from tests.support.processes import Proc, gateway_cmd

pytestmark = [pytest.mark.broker, pytest.mark.modbus, pytest.mark.timeout(240)]
broker = fixtures.broker

SEED = int(os.environ.get("GTX_SIGTERM_SEED", "1309"))


def keygen(state: Path) -> None:
    done = subprocess.run(gateway_cmd("keygen", "--out", str(state / "device.key")), capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr


def config_text(gateway_id: str, state: Path, broker_port: int, buses: str, meters: str) -> str:
    return (
        f'[gateway]\nid = "{gateway_id}"\n\n{buses}\n{meters}\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker_port}\nreconnect_max_s = 1\n'
        f'backend_key_file = "{backend_pub(state.parent)}"\n\n'
        f'[outbox]\npath = "{state}/outbox.db"\n\n[key]\npath = "{state}/device.key"\n'
    )


def meter(meter_id: str, model: str, unit: int, bus: str, interval: float, timeout: float) -> str:
    return (
        f'[[meter]]\nid = "{meter_id}"\nmodel = "{model}"\nunit = {unit}\nbus = "{bus}"\ninterval = {interval}\n'
        f"timeout = {timeout}\nretries = 1\n\n"
    )


def check_outbox(state: Path) -> int:
    """Intact: integrity check passes, every committed reading is there once, gap-free per meter (nothing
    was acknowledged, so nothing may be missing), every signature valid. Returns the readings held."""
    public_key = load_key(state / "device.key").public_key
    with sqlite3.connect(f"file:{state / 'outbox.db'}?mode=ro", uri=True, timeout=5) as db:
        assert db.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        counters = dict(db.execute("SELECT meter_id, next_counter FROM counters").fetchall())
        rows = db.execute("SELECT meter_id, seq, data, sig FROM outbox ORDER BY id").fetchall()
    by_meter: dict[str, list[int]] = {}
    for meter_id, seq, data, sig in rows:
        reading = verify(bytes(data), bytes(sig), public_key)
        assert (reading.meter_id, reading.seq) == (meter_id, seq)
        by_meter.setdefault(meter_id, []).append(seq & ((1 << COUNTER_BITS) - 1))
    assert set(by_meter) == set(counters)
    for meter_id, seqs in by_meter.items():
        assert seqs == list(range(counters[meter_id])), f"{meter_id}: committed {counters[meter_id]}, held {seqs[:5]}…"
    return len(rows)


def sigterm_run(config: Path, log: Path, rng: random.Random) -> tuple[int, float, str]:
    """Start a gateway, wait until it runs, SIGTERM it after a random time; (status, seconds to exit, log)."""
    proc = Proc(gateway_cmd("run", "--config", str(config)), log)
    try:
        deadline = time.monotonic() + 30
        while "running: key" not in proc.log() and proc.running and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.running, proc.log()[-3000:]
        time.sleep(rng.uniform(0.05, 2.5))  # somewhere in the polling: mid-request, mid-commit, mid-retry
        proc.proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        try:
            status = proc.proc.wait(SHUTDOWN_DEADLINE_S)
        except subprocess.TimeoutExpired:
            status = None  # type: ignore[assignment]
        took = time.monotonic() - sent
        return status, took, proc.log()
    finally:
        proc.kill()


def run_pairs(rounds: int, configs: list[Path], tmp: Path, rng: random.Random) -> list[float]:
    """``rounds`` x len(configs) SIGTERM runs, the gateways of a round side by side (threads)."""
    import concurrent.futures

    took_all: list[float] = []
    with concurrent.futures.ThreadPoolExecutor(len(configs)) as pool:
        for r in range(rounds):
            seeds = [rng.random() for _ in configs]
            futures = [
                pool.submit(sigterm_run, config, tmp / f"gw-{i}-{r}.log", random.Random(seed))
                for i, (config, seed) in enumerate(zip(configs, seeds, strict=True))
            ]
            for config, future in zip(configs, futures, strict=True):
                status, took, log = future.result()
                assert status == 0, f"round {r}, {config.name}: status {status} after {took:.1f} s\n{log[-4000:]}"
                assert took < SHUTDOWN_DEADLINE_S
                assert " stopped: " in log, log[-3000:]
                assert "Traceback" not in log, log[-4000:]
                took_all.append(took)
            for config in configs:
                check_outbox(config.parent / "state")
    return took_all


def test_ten_tcp_meters_at_0_2_s_stop_on_sigterm_every_time(tmp_path: Path, broker: Mosquitto) -> None:
    rng = random.Random(SEED)
    sim_args = [
        *(a for u in range(1, 6) for a in ("--meter", f"sdm630:{u}")),
        *(a for u in range(6, 11) for a in ("--meter", f"sdm120:{u}")),
        "--fault", "3:slow", "--delay", "0.45",  # answers after the gateway's 0.3 s timeout: late
        "--fault", "7:unsolicited",
        "--tcp", "127.0.0.1:0",
    ]
    with meter_sim_process(sim_args) as where:
        configs = []
        for i in range(2):
            work = tmp_path / f"gw{i}"
            keygen(work / "state")
            bus = f'[[bus]]\nname = "lan"\ntype = "tcp"\nhost = "{where["host"]}"\nport = {where["port"]}\n\n'
            meters = "".join(
                meter(f"m{u}", "sdm630" if u <= 5 else "sdm120", u, "lan", 0.2, 0.3) for u in range(1, 11)
            )
            config = work / "gateway.toml"
            config.write_text(config_text(f"gw-sig-{i}", work / "state", broker.port, bus, meters))
            configs.append(config)
        took = run_pairs(6, configs, tmp_path, rng)
    held = [check_outbox(c.parent / "state") for c in configs]
    assert all(h > 0 for h in held)
    assert len(took) == 12


@pytest.mark.serial
def test_mixed_tcp_rtu_sunspec_stop_on_sigterm_every_time(tmp_path: Path, broker: Mosquitto) -> None:
    rng = random.Random(SEED + 1)
    tcp_args = ["--meter", "sdm630:1", "--meter", "sunspec:2", "--fault", "2:slow", "--delay", "0.5",
                "--tcp", "127.0.0.1:0"]
    with ExitStack() as stack:
        tcp = stack.enter_context(meter_sim_process(tcp_args))
        configs = []
        for i in range(2):
            work = tmp_path / f"gw{i}"
            keygen(work / "state")
            gateway_end = stack.enter_context(rtu_line(i))
            buses = (
                f'[[bus]]\nname = "lan"\ntype = "tcp"\nhost = "{tcp["host"]}"\nport = {tcp["port"]}\n\n'
                f'[[bus]]\nname = "rs485"\ntype = "rtu"\ndevice = "{gateway_end}"\nbaudrate = 19200\n\n'
            )
            meters = (
                meter("tcp-3p", "sdm630", 1, "lan", 0.2, 0.4)
                + meter("tcp-pv", "sunspec", 2, "lan", 0.2, 0.4)
                + meter("rtu-1p", "sdm120", 5, "rs485", 0.5, 0.3)
                + meter("rtu-3p-late", "sdm630", 6, "rs485", 0.5, 0.3)
                + meter("rtu-noisy", "sdm120", 7, "rs485", 0.5, 0.3)
                + meter("rtu-pv", "sunspec", 8, "rs485", 0.5, 0.3)
            )
            config = work / "gateway.toml"
            config.write_text(config_text(f"gw-mix-{i}", work / "state", broker.port, buses, meters))
            configs.append(config)
        took = run_pairs(5, configs, tmp_path, rng)
    held = [check_outbox(c.parent / "state") for c in configs]
    assert all(h > 0 for h in held)
    assert len(took) == 10


@contextmanager
def rtu_line(index: int) -> Iterator[str]:
    """A pty pair with an RTU meter-sim on one end: the gateway end's path. The sim's SDM630 answers late
    (after the gateway's timeout) and one SDM120 sends every answer twice."""
    with SerialPair() as (gateway_end, meter_end):
        # Keep the gateway end open here too: a pty whose last user closes it hangs up, and each
        # SIGTERM run closes it.
        fd = os.open(gateway_end, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            args = ["--meter", "sdm120:5", "--meter", "sdm630:6", "--meter", "sdm120:7", "--meter", "sunspec:8",
                    "--fault", "6:slow", "--delay", "0.4", "--fault", "7:unsolicited",
                    "--serial", meter_end, "--baud", "19200"]
            with meter_sim_process(args):
                yield gateway_end
        finally:
            os.close(fd)
