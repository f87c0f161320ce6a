"""What does a reading cost the gateway? CPU seconds per 1,000 readings of a real ``gateway run``.

50 simulated SDM630 meters behind ONE Modbus TCP endpoint (one ``gridtokenx meter-sim`` serving units
1-50, the normal case behind a Modbus TCP <-> RS-485 converter) are polled every second by the real
daemon, which decodes every register, checks plausibility, signs, commits to SQLite and forwards through
a real Mosquitto to the real backend (PostgreSQL by default), which acknowledges. The script prints, for
the measuring window (after a warm-up):

* readings/s committed by the gateway (from its outbox's sequence counters) and delivered to the backend,
* CPU seconds per 1,000 readings of the gateway process (utime + stime from /proc, every thread),
* the gateway's resident set size,
* how many TCP connections the meter endpoint holds, counted on the server side (/proc/net/tcp),
* the machine's load average, since a shared machine skews every figure.

    python bench/bench_gateway_cpu.py                          # 50 meters, 1 Hz, 120 s
    python bench/bench_gateway_cpu.py --outage 30              # broker stopped for 30 s a third of the way in
    python bench/bench_gateway_cpu.py --profile py-spy         # also write a py-spy flame graph (py-spy installed)
    python bench/bench_gateway_cpu.py --profile cprofile --profile-out gw.prof   # cProfile of the event loop
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import subprocess
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

_TICK = os.sysconf("SC_CLK_TCK")
GW = "gw-cpu"


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def thread_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds per thread name (the event loop is the process's own name; paho, aiosqlite threads)."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
            name = (task / "comm").read_text().strip()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        key = "event loop" if task.name == str(pid) else name
        out[key] = out.get(key, 0.0) + (int(fields[11]) + int(fields[12])) / _TICK
    return out


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def server_connections(port: int) -> int:
    """Established TCP connections whose local port is ``port`` (the meter endpoint's side)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            local, state = parts[1], parts[3]
            if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


def committed(outbox: Path) -> int:
    """Readings the gateway has signed and committed so far (sum of the per-meter counters)."""
    try:
        with sqlite3.connect(f"file:{outbox}?mode=ro", uri=True, timeout=5) as db:
            return int(db.execute("SELECT coalesce(sum(next_counter), 0) FROM counters").fetchone()[0])
    except sqlite3.Error:
        return 0


async def add_gateway(url: str, public_key: bytes) -> None:
    async with await open_storage(url) as storage:
        await storage.add_gateway(GW, public_key)


async def stored(url: str) -> int:
    async with await open_storage(url) as storage:
        return await storage.reading_count(GW)


def write_config(path: Path, work: Path, sim_port: int, broker_port: int, meters: int, interval: float,
                 extra: str, pipeline: int) -> Path:
    text = (
        f'[gateway]\nid = "{GW}"\n\n'
        f'[[bus]]\nname = "converter"\ntype = "tcp"\nhost = "127.0.0.1"\nport = {sim_port}\ntimeout = 1.0\n'
        f"pipeline = {pipeline}\n\n"
    )
    text += "".join(
        f'[[meter]]\nid = "m{u}"\nmodel = "sdm630"\nunit = {u}\nbus = "converter"\ninterval = {interval}\n\n'
        for u in range(1, meters + 1)
    )
    text += (
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker_port}\nreconnect_max_s = 2\n'
        f'backend_key_file = "{backend_pub(work)}"\n\n'
        f'[outbox]\npath = "{work}/state/outbox.db"\n\n[key]\npath = "{work}/state/device.key"\n\n{extra}'
    )
    path.write_text(text)
    return path


def bench(args: argparse.Namespace, url: str, work: Path) -> None:
    key = generate_key(work / "state" / "device.key")
    asyncio.run(add_gateway(url, key.public_key))
    sim, sim_port = start_meter_sim(list(range(1, args.meters + 1)), work / "sim.log", model="sdm630", speedup=1.0)
    outbox = work / "state" / "outbox.db"
    with Mosquitto(work / "broker") as broker:
        config = write_config(
            work / "gateway.toml", work, sim_port, broker.port, args.meters, args.interval, args.extra, args.pipeline
        )
        backend = Proc(
            backend_cmd(
                "run", "--config", str(write_backend_config(work / "b.toml", url=url, broker_port=broker.port))
            ),
            work / "backend.log",
        )
        cmd = gateway_cmd("run", "--config", str(config))
        if args.profile == "cprofile":  # deterministic profile of the event loop thread, written at exit
            cmd = [cmd[0], "-m", "cProfile", "-o", str(Path(args.profile_out).resolve()), *cmd[1:]]
        gateway = Proc(cmd, work / "gateway.log", env={"GRIDTOKENX_LOG_LEVEL": "WARNING"})
        spy: subprocess.Popen[bytes] | None = None
        try:
            time.sleep(args.warmup)
            if not gateway.running:
                raise SystemExit(f"gateway exited: {gateway.log()[-2000:]}")
            if args.profile == "py-spy":
                spy = subprocess.Popen(
                    [
                        "py-spy", "record", "--pid", str(gateway.proc.pid), "--rate", "200", "--subprocesses",
                        "--format", args.profile_format, "--output", str(Path(args.profile_out).resolve()),
                        "--duration", str(int(args.duration)),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            cpu0, n0, t0 = cpu_s(gateway.proc.pid), committed(outbox), time.monotonic()
            threads0 = thread_cpu_s(gateway.proc.pid)
            peak_rss, conns = 0.0, set()
            outage = BrokerOutage(broker, args.duration / 3, args.outage or 0)
            while (elapsed := time.monotonic() - t0) < args.duration:
                time.sleep(min(5.0, args.duration - elapsed) if args.duration - elapsed > 0 else 0)
                elapsed = time.monotonic() - t0
                if not gateway.running:
                    raise SystemExit(f"gateway exited: {gateway.log()[-2000:]}")
                outage.step(elapsed)
                peak_rss = max(peak_rss, rss_mb(gateway.proc.pid))
                conns.add(server_connections(sim_port))
                if args.verbose:
                    n = committed(outbox) - n0
                    print(f"  {elapsed:5.0f} s: {n} readings, CPU {cpu_s(gateway.proc.pid) - cpu0:.2f} s")
            cpu1, n1, t1 = cpu_s(gateway.proc.pid), committed(outbox), time.monotonic()
            threads1 = thread_cpu_s(gateway.proc.pid)
            rss_end = rss_mb(gateway.proc.pid)
            readings = n1 - n0
            window = t1 - t0
            # Let the backlog (if any) drain, then count what the backend holds.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and asyncio.run(stored(url)) < n1:
                time.sleep(1)
            at_backend = asyncio.run(stored(url))
        finally:
            if spy is not None:
                spy.wait(timeout=args.duration + 30)
            gateway.terminate()
            backend.terminate()
            stop_meter_sim(sim)
    cpu = cpu1 - cpu0
    load = os.getloadavg()
    print(
        f"{args.meters} SDM630 behind one endpoint (pipeline {args.pipeline}), every {args.interval:g} s, "
        f"{window:.0f} s measured "
        f"(after {args.warmup:g} s warm-up{f', {args.outage:g} s broker outage' if args.outage else ''}):"
    )
    print(f"  readings/s            {readings / window:.1f} committed ({readings} readings); "
          f"backend holds {at_backend}, at least the {n1} committed by the end of the window: "
          f"{'yes' if at_backend >= n1 else 'NO'}")
    print(f"  CPU per 1,000         {cpu / readings * 1000:.3f} CPU-s (gateway utime+stime {cpu:.2f} s)")
    per_thread = ", ".join(
        f"{name} {threads1[name] - threads0.get(name, 0.0):.2f} s"
        for name in sorted(threads1, key=lambda n: -threads1[n])
    )
    print(f"  by thread             {per_thread}")
    print(f"  gateway RSS           {rss_end:.1f} MB at end, {peak_rss:.1f} MB peak")
    print(f"  endpoint connections  {', '.join(map(str, sorted(conns)))} (server side, sampled every 5 s)")
    print(f"  load average          {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} cores)")
    if args.profile:
        print(f"  {args.profile} output  {Path(args.profile_out).resolve()}")
    # Machine-readable, for bench/run_all.py (one key per pipeline setting).
    suffix = "" if args.pipeline == 1 else f"_pipeline{args.pipeline}"
    print(f"FIGURE gateway_cpu_s_per_1000_readings{suffix} {cpu / readings * 1000:.4f} CPU-s")
    print(f"FIGURE gateway_readings_per_s{suffix} {readings / window:.2f} readings/s")
    print(f"FIGURE gateway_endpoint_connections{suffix} {max(conns)} connections")
    print(f"FIGURE gateway_cpu_bench_rss_mb{suffix} {peak_rss:.1f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", type=int, default=50)
    parser.add_argument("--interval", type=float, default=1.0, help="poll interval per meter, s")
    parser.add_argument("--duration", type=float, default=120, help="measuring window, s")
    parser.add_argument("--warmup", type=float, default=10, help="seconds before measuring starts")
    parser.add_argument("--outage", type=float, default=0, help="stop the broker this long, a third of the way in")
    parser.add_argument("--pipeline", type=int, default=1,
                        help="the bus's pipeline setting: requests outstanding at once on its connection")
    parser.add_argument("--extra", default="", help="TOML appended to the gateway config (e.g. a [telemetry] table)")
    parser.add_argument("--profile", choices=["py-spy", "cprofile"], default=None,
                        help="py-spy: sample the gateway (py-spy installed); cprofile: run it under cProfile")
    parser.add_argument("--profile-out", default="gateway-cpu.svg")
    parser.add_argument(
        "--profile-format", default="flamegraph", help="py-spy output format (flamegraph, raw, speedscope)"
    )
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gtx-cpu-") as tmp:
        if os.environ.get("GTX_BENCH_SQLITE"):
            bench(args, f"sqlite:///{tmp}/backend.db", Path(tmp))
        else:
            with temp_database() as url:
                bench(args, url, Path(tmp))


if __name__ == "__main__":
    main()
