"""Does the gateway's memory stay flat? Prints the RSS of a real ``gateway run`` over time.

100 simulated meters (one ``gridtokenx meter-sim`` serving units 1-100 over Modbus TCP) are polled
every second by the real daemon, which signs, stores and forwards through a real Mosquitto to the
real backend (PostgreSQL by default). Every ``--every`` seconds the gateway's resident set size is
read from /proc; at the end the script prints the first, peak and last values and the growth over
the second half of the run (the first half includes start-up and warm-up).

    python bench/bench_soak_memory.py                      # 100 meters, 5 minutes
    python bench/bench_soak_memory.py --duration 1800 --every 30 --outage 60
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.storage import open_storage
from gateway.keys import generate_key
from tests.support.ackkey import backend_pub
from tests.support.mosquitto import BrokerOutage, Mosquitto
from tests.support.postgres import temp_database
from tests.support.processes import (
    Proc,
    backend_cmd,
    gateway_cmd,
    start_meter_sim,
    stop_meter_sim,
    write_backend_config,
)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def rss_split_mb(pid: int) -> tuple[float, float]:
    """(mapped files — shared libraries and extension modules —, anonymous memory — the Python heap,
    objects and malloc —) of the RSS, in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        fields[name] = int(value.split()[0]) / 1024
    return fields["Rss"] - fields["Anonymous"], fields["Anonymous"]


async def add_gateway(url: str, public_key: bytes) -> None:
    async with await open_storage(url) as storage:
        await storage.add_gateway("gw-soak", public_key)


async def count(url: str) -> int:
    async with await open_storage(url) as storage:
        return await storage.reading_count("gw-soak")


def soak(args: argparse.Namespace, url: str, work: Path) -> None:
    key = generate_key(work / "state" / "device.key")
    asyncio.run(add_gateway(url, key.public_key))
    units = list(range(1, args.meters + 1))
    sim, sim_port = start_meter_sim(units, work / "sim.log", speedup=1.0)
    with Mosquitto(work / "broker") as broker:
        meters = "".join(
            f'[[meter]]\nid = "m{u}"\nmodel = "sdm120"\nunit = {u}\nbus = "sim{u % 4}"\ninterval = {args.interval}\n'
            'measurements = ["import_energy", "export_energy", "power_total"]\n\n'
            for u in units
        )
        buses = "".join(
            f'[[bus]]\nname = "sim{b}"\ntype = "tcp"\nhost = "127.0.0.1"\nport = {sim_port}\ntimeout = 2.0\n\n'
            for b in range(4)
        )
        config = work / "gateway.toml"
        config.write_text(
            f'[gateway]\nid = "gw-soak"\n\n{buses}{meters}'
            f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\nbackend_key_file = "{backend_pub(work)}"\n\n'
            f'[outbox]\npath = "{work}/state/outbox.db"\n\n[key]\npath = "{work}/state/device.key"\n'
        )
        backend = Proc(
            backend_cmd(
                "run", "--config", str(write_backend_config(work / "b.toml", url=url, broker_port=broker.port))
            ),
            work / "backend.log",
        )
        gateway = Proc(
            gateway_cmd("run", "--config", str(config)), work / "gateway.log", env={"GRIDTOKENX_LOG_LEVEL": "WARNING"}
        )
        samples: list[tuple[float, float, int]] = []
        split = (0.0, 0.0)
        start = time.monotonic()
        outage = BrokerOutage(broker, args.duration / 3, args.outage or 0)
        try:
            while (elapsed := time.monotonic() - start) < args.duration:
                time.sleep(args.every)
                if not gateway.running:
                    raise SystemExit(f"gateway exited: {gateway.log()[-2000:]}")
                outage.step(elapsed)
                stored = asyncio.run(count(url))
                samples.append((elapsed, rss_mb(gateway.proc.pid), stored))
                split = rss_split_mb(gateway.proc.pid)
                print(f"  {elapsed:6.0f} s: gateway RSS {samples[-1][1]:5.1f} MB, backend holds {stored} readings")
        finally:
            gateway.terminate()
            backend.terminate()
            stop_meter_sim(sim)
    if not samples:
        return
    half = [s[1] for s in samples[len(samples) // 2 :]]
    print(
        f"RSS: first {samples[0][1]:.1f} MB, peak {max(s[1] for s in samples):.1f} MB, last {samples[-1][1]:.1f} MB; "
        f"second half {min(half):.1f}-{max(half):.1f} MB (growth {half[-1] - half[0]:+.1f} MB); "
        f"{samples[-1][2]} readings delivered from {args.meters} meters"
    )
    print(f"last RSS: {split[0]:.1f} MB mapped files (libraries, extension modules), {split[1]:.1f} MB anonymous")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", type=int, default=100)
    parser.add_argument("--interval", type=float, default=1.0, help="poll interval per meter, s")
    parser.add_argument("--duration", type=float, default=300)
    parser.add_argument("--every", type=float, default=15)
    parser.add_argument("--outage", type=float, default=0, help="stop the broker this long, a third of the way in")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gtx-soak-") as tmp, temp_database() as url:
        soak(args, url, Path(tmp))


if __name__ == "__main__":
    main()
