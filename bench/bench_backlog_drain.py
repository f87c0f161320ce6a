"""How fast does a gateway empty the backlog of an outage? Prints readings/s, end to end.

A 10-minute outage of 100 meters polled every second leaves 60,000 signed readings in the outbox.
This script builds exactly that backlog through the real signer and outbox, then starts a real
Mosquitto, the real backend (``gridtokenx backend run``, a separate process, PostgreSQL by default)
and the real gateway service, and times until the backend has stored every reading and the gateway
has deleted every acknowledged row. It also prints the CPU seconds the backend, the gateway (this
process) and Mosquitto used during the drain, per reading, and how busy the whole machine was: on a
shared machine a readings/s figure alone does not say whether other work took the cores.

    python bench/bench_backlog_drain.py                  # 100 meters x 600 s, PostgreSQL; runs 1, 2 and 1:2
    python bench/bench_backlog_drain.py --runs 1         # one ingest process only
    python bench/bench_backlog_drain.py --runs 2,3       # 2, then 3 ingest processes on a shared subscription
    python bench/bench_backlog_drain.py --runs 1:2       # one ingest process with 2 verification processes
    python bench/bench_backlog_drain.py --sqlite         # the embedded backend database
    python bench/bench_backlog_drain.py --meters 100 --seconds 60 --batch-size 500 --inflight 8

Each drain starts from a fresh backlog and a fresh database; the last lines compare them: readings/s
end to end and the CPU per reading of every process (a backend's verification processes included).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.storage import open_storage
from gateway.keys import generate_key
from gateway.mqtt_publisher import MqttSettings
from gateway.outbox import Outbox, OutboxSettings
from gateway.sample import MeterSample
from gateway.service import GatewayService
from tests.support.ackkey import backend_pub
from tests.support.mosquitto import Mosquitto
from tests.support.postgres import temp_database
from tests.support.processes import Proc, backend_cmd, write_backend_config

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int, children: bool = False) -> float:
    """CPU seconds (user + system, all threads) a process has used so far; with ``children``, plus its
    live child processes (a backend's verification processes)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / _TICK
    if not children:
        return own
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids += [int(c) for c in (task / "children").read_text().split()]
    return own + sum(cpu_s(c, True) for c in kids)


def machine_busy_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, over all cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    total = sum(values) / _TICK
    return total - (values[3] + values[4]) / _TICK, total


async def fill(outbox: Outbox, key, meters: int, seconds: int) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    batch: list[MeterSample] = []
    for t in range(seconds):
        for m in range(meters):
            batch.append(
                MeterSample(
                    meter_id=f"meter-{m:04d}",
                    timestamp_ms=1_760_000_000_000 + t * 1000,
                    import_wh=1_000_000 + t * 3 + m,
                    export_wh=t,
                    power_w=1500 + m,
                )
            )
        if len(batch) >= 2000:
            await outbox.append(batch, key.sign)
            batch = []
    if batch:
        await outbox.append(batch, key.sign)
    return time.perf_counter() - start


async def drain(args: argparse.Namespace, url: str, work: Path, n_backends: int, verify_processes: int) -> str:
    total = args.meters * args.seconds
    key = generate_key(work / "device.key")
    settings = OutboxSettings(path=work / "outbox.db", max_bytes=max(64 << 20, total * 400))
    async with await Outbox.open(settings, work / "device.key.epoch") as outbox:
        took = await fill(outbox, key, args.meters, args.seconds)
    print(
        f"backlog: {total} readings ({args.meters} meters x {args.seconds} s) signed and committed "
        f"in {took:.1f} s ({total / took:,.0f}/s)"
    )
    async with await open_storage(url) as storage:
        await storage.add_gateway("gw-bench", key.public_key)
    with Mosquitto(work / "broker") as broker:
        # Several ingest processes share the readings topic through an MQTT shared subscription, as
        # docs/mqtt.md describes for a backend on more cores; one is the default.
        share = "ingest" if n_backends > 1 else None
        def command(i: int) -> list[str]:
            extra = f"[ingest]\nverify_processes = {verify_processes}\n"
            cmd = backend_cmd("run", "--config", str(write_backend_config(
                work / f"b{i}.toml", url=url, broker_port=broker.port, instance=i, shared_group=share, extra=extra)))
            if args.profile is not None:  # cProfile of the event loop's thread, written at exit
                cmd[1:1] = ["-m", "cProfile", "-o", str(args.profile / f"backend{n_backends}-{i}.prof")]
            return cmd

        backends = [Proc(command(i), work / f"backend{i}.log") for i in range(n_backends)]
        try:
            await asyncio.sleep(2.0)  # let the backend connect and subscribe
            mqtt = MqttSettings(
                host="127.0.0.1",
                port=broker.port,
                gateway_id="gw-bench",
                backend_key_file=backend_pub(work),
                batch_size=args.batch_size,
                inflight_batches=args.inflight,
                ack_timeout_s=30,
            )
            service = GatewayService(key=key, mqtt=mqtt, outbox=settings)
            pids = {f"backend {i}": b.proc.pid for i, b in enumerate(backends)}
            pids |= {"gateway (this process)": os.getpid(), "mosquitto": broker.proc.pid}
            cpu_before = {name: cpu_s(pid, name.startswith("backend")) for name, pid in pids.items()}
            busy_before = machine_busy_s()
            start = time.perf_counter()
            task = asyncio.create_task(service.run())
            await service.ready.wait()
            last = time.perf_counter()
            assert service.outbox is not None
            while service.outbox.pending:
                await asyncio.sleep(0.25)
                if time.perf_counter() - last >= 2:
                    last = time.perf_counter()
                    done = total - service.outbox.pending
                    print(f"  {last - start:5.1f} s: {done} acknowledged ({done / (last - start):,.0f}/s)")
                if time.perf_counter() - start > args.limit_s:
                    raise SystemExit(f"not drained within {args.limit_s} s; see {work}/backend*.log")
            elapsed = time.perf_counter() - start
            cpu = {name: cpu_s(pid, name.startswith("backend")) - cpu_before[name] for name, pid in pids.items()}
            busy = [after - before for after, before in zip(machine_busy_s(), busy_before, strict=True)]
            service.stop()
            await task
            async with await open_storage(url) as storage:
                stored = await storage.reading_count("gw-bench")
            stats = service.stats().publisher
            print(
                f"drained: {total} readings in {elapsed:.1f} s = {total / elapsed:,.0f} readings/s end to end "
                f"(backend stored {stored}; {stats.messages_sent} messages, {stats.readings_resent} resent)"
            )
            # Where the CPU went during the drain (PostgreSQL and anything else running on the machine
            # are the rest of "machine busy"), in microseconds per reading.
            parts = ", ".join(f"{name} {sec:.1f} s ({sec / total * 1e6:.0f} us/reading)" for name, sec in cpu.items())
            print(
                f"CPU during the drain: {parts}; machine busy {busy[0]:.1f} of {busy[1]:.1f} core-seconds "
                f"({os.cpu_count()} cores)"
            )
            assert stored == total, f"backend holds {stored} of {total}"
            backend_us = [cpu[f"backend {i}"] / total * 1e6 for i in range(n_backends)]
            checks = f"{verify_processes} verification processes each" if verify_processes else "checks in a thread"
            label = f"{n_backends}:{verify_processes}" if verify_processes else f"{n_backends}"  # as in --runs
            print(f"FIGURE drain_readings_per_s_{label} {total / elapsed:.0f} readings/s")
            print(f"FIGURE ingest_cpu_us_per_reading_{label} {sum(backend_us):.0f} µs")
            return (
                f"{n_backends} ingest process{'es' if n_backends > 1 else ''} ({checks}): "
                f"{total / elapsed:,.0f} readings/s; "
                f"backend CPU {' + '.join(f'{u:.0f}' for u in backend_us)} = {sum(backend_us):.0f} us/reading, "
                f"gateway {cpu['gateway (this process)'] / total * 1e6:.0f}, "
                f"mosquitto {cpu['mosquitto'] / total * 1e6:.0f}; machine {busy[0] / busy[1]:.0%} busy"
            )
        finally:
            for b in backends:
                b.terminate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=600, help="outage length at one reading per meter per s")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--inflight", type=int, default=8)
    parser.add_argument("--sqlite", action="store_true", help="backend on SQLite instead of PostgreSQL")
    parser.add_argument("--limit-s", type=float, default=300)
    parser.add_argument("--profile", type=Path, help="write a cProfile of each backend process into this folder")
    parser.add_argument(
        "--runs",
        default="1,2,1:2",
        help="drains to run: N ingest processes (on one shared subscription), or N:V with V verification "
        "processes each ([ingest] verify_processes)",
    )
    args = parser.parse_args()
    runs = [(int(r.split(":")[0]), int(r.split(":")[1]) if ":" in r else 0) for r in args.runs.split(",")]
    lines = []
    for n, v in runs:
        print(f"--- {n} ingest process{'es' if n > 1 else ''}, {v} verification processes each "
              f"(load average {os.getloadavg()[0]:.2f})")
        with tempfile.TemporaryDirectory(prefix="gtx-bench-") as tmp:
            work = Path(tmp)
            if args.sqlite:
                lines.append(asyncio.run(drain(args, f"sqlite:///{work}/backend.db", work, n, v)))
            else:
                with temp_database() as url:
                    lines.append(asyncio.run(drain(args, url, work, n, v)))
    print("summary:")
    for line in lines:
        print(f"  {line}")


if __name__ == "__main__":
    main()
