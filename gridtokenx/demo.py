"""``gridtokenx demo``: the whole path on one machine, with the same commands an operator runs.

    meter-sim (TCP: SDM630 + SunSpec)  ─┐
    meter-sim (RTU on a pty pair: 2 x SDM120, unit 3 configured but dead)
                                        ├─► gridtokenx gateway run ─► Mosquitto ─► gridtokenx backend run
    gridtokenx gateway keygen ──────────┘        (signs, outbox)      (private)     (verify, store, ack)
                                                                                          │ SQLite
    embedded LiteSVM: registry, energy_token, trading ◄── minting worker (baseline, then surplus)
                      GRID minted → sell order in escrow → consumer buys with THBC → TradeExecuted

Everything runs on embedded defaults: a private Mosquitto on a free port, the backend on SQLite in the
work directory. Each part is a real process started with the real command line, so what the demo shows
is what a deployment does. At the end the backend's database is checked (every reading verified, per
meter a gap-free run of sequence numbers, none flagged), then the backend's minting worker settles the
signed readings on an embedded chain and the biggest producer's surplus is sold to a consumer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

GATEWAY_ID = "demo-gw"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=30.0, help="seconds to run (default 30)")
    parser.add_argument(
        "--speedup", type=float, default=600.0, help="simulated seconds per real second (default 600: 10 min/s)"
    )
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between polls of a meter (default 1)")
    parser.add_argument("--workdir", type=Path, help="keep state and logs here (default: a temporary directory)")


class DemoError(RuntimeError):
    pass


@dataclass
class _Proc:
    name: str
    popen: subprocess.Popen[str]
    log_path: Path

    def stop(self, timeout: float = 15.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode

    def tail(self, lines: int = 15) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(f"    {line}" for line in text[-lines:])


class _Stack:
    """Starts processes and stops them in reverse order, whatever happens."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[_Proc] = []

    def start(
        self, name: str, cmd: list[str], *, ready: str | None = None, timeout: float = 20.0
    ) -> re.Match[str] | None:
        log_path = self.workdir / f"{name}.log"
        log = open(log_path, "a")  # handed to the child, closed below
        popen = subprocess.Popen(
            cmd, stdout=subprocess.PIPE if ready else log, stderr=log, text=True, start_new_session=True
        )
        log.close()
        proc = _Proc(name, popen, log_path)
        self.procs.append(proc)
        if ready is None:
            return None
        assert popen.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = popen.stdout.readline()
            if not line:
                break
            match = re.search(ready, line)
            if match:
                return match
        raise DemoError(f"{name} did not become ready:\n{proc.tail()}")

    def check_alive(self) -> None:
        for proc in self.procs:
            if proc.popen.poll() is not None:
                raise DemoError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}")

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "gridtokenx", *args]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_broker(stack: _Stack) -> int:
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(mosquitto).exists():
        raise DemoError("mosquitto is not installed: apt-get install mosquitto (or run bash .ci/setup)")
    port = _free_port()
    conf = stack.workdir / "mosquitto.conf"
    lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "persistence false"]
    if os.geteuid() == 0:
        lines.append("user root")  # as root mosquitto would switch to a user who cannot read the workdir
    conf.write_text("\n".join(lines) + "\n")
    stack.start("mosquitto", [mosquitto, "-c", str(conf)])
    _wait_port(port, "mosquitto", stack)
    return port


def _wait_port(port: int, name: str, stack: _Stack, timeout: float = 10.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack.check_alive()
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise DemoError(f"{name} is not listening on port {port}")


# (meter id, model, unit, bus). flat-3 is configured but not on the line: the gateway marks it offline
# and the others never wait for it.
DEMO_METERS = (
    ("house-main", "sdm630", 1, "lan"),
    ("pv-inverter", "sunspec", 2, "lan"),
    ("flat-1", "sdm120", 1, "rs485"),
    ("flat-2", "sdm120", 2, "rs485"),
    ("flat-3", "sdm120", 3, "rs485"),
)
LIVE_METERS = tuple(meter_id for meter_id, *_ in DEMO_METERS if meter_id != "flat-3")


def _gateway_config(
    workdir: Path, *, tcp_port: int, serial: str, broker_port: int, interval: float, speedup: float
) -> Path:
    from gateway.models import get_model

    def meter_block(meter_id: str, model: str, unit: int, bus: str) -> str:
        # The simulator compresses time `speedup`-fold, so per wall-clock second its counters rise that
        # much faster than a real meter's could; the plausibility bound scales with it, or every reading
        # after the first would be flagged METER_ERROR (and never minted).
        bound = int(get_model(model).rated_power_w * max(1.0, speedup))
        return (
            f'[[meter]]\nid = "{meter_id}"\nmodel = "{model}"\nunit = {unit}\nbus = "{bus}"\n'
            f"interval = {interval}\nmax_power_w = {bound}\n"
            + ("offline_after = 1\n" if meter_id not in LIVE_METERS else "")
        )

    path = workdir / "gateway.toml"
    meters = "\n".join(meter_block(*meter) for meter in DEMO_METERS)
    path.write_text(
        f"""# Written by `gridtokenx demo`; the commented reference is systemd/gateway.example.toml.
[gateway]
id = "{GATEWAY_ID}"

[[bus]]
name = "lan"
type = "tcp"
host = "127.0.0.1"
port = {tcp_port}
timeout = 1.0

[[bus]]
name = "rs485"
type = "rtu"
device = "{serial}"
baudrate = 9600
timeout = 0.3

{meters}
[mqtt]
host = "127.0.0.1"
port = {broker_port}
ack_timeout_s = 3.0
backend_key_file = "{workdir}/backend-ack.key.pub"

[outbox]
path = "{workdir}/gateway/outbox.db"

[key]
path = "{workdir}/gateway/device.key"
"""
    )
    return path


async def _report(db_url: str, *, final: bool) -> tuple[dict[str, list[int]], int, int]:
    """Per meter: its stored sequence numbers; how many readings are quarantined; how many flagged."""
    from backend.storage import open_storage
    from gridtokenx.reading import decode

    storage = await open_storage(db_url)
    try:
        rows = await storage.readings(GATEWAY_ID)
        quarantined = sum((await storage.quarantine_counts()).values())
    finally:
        await storage.close()
    by_meter: dict[str, list[int]] = {}
    latest: dict[str, tuple[int, int, int, int | None]] = {}
    first: dict[str, tuple[int, int]] = {}
    flagged = 0
    for row in rows:
        reading = decode(row.data)
        flagged += reading.meter_error
        by_meter.setdefault(reading.meter_id, []).append(reading.seq)
        first.setdefault(reading.meter_id, (reading.import_wh, reading.export_wh))
        latest[reading.meter_id] = (reading.seq, reading.import_wh, reading.export_wh, reading.power_w)
    heading = "final" if final else "so far"
    print(f"  backend holds {len(rows)} verified readings ({heading}), {flagged} flagged, {quarantined} quarantined")
    for meter in sorted(by_meter):
        _, imp, exp, power = latest[meter]
        imp0, exp0 = first[meter]
        power_text = f"{power:>7} W" if power is not None else "      - W"
        print(
            f"    {meter:<12} {len(by_meter[meter]):>5} readings  import {imp:>10} Wh (+{imp - imp0})"
            f"  export {exp:>10} Wh (+{exp - exp0})  {power_text}"
        )
    return by_meter, quarantined, flagged


@contextlib.contextmanager
def _workdir(given: Path | None) -> Iterator[Path]:
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="gridtokenx-demo-") as tmp:
        yield Path(tmp)


def run(args: argparse.Namespace) -> int:
    from meter_sim.serial_pair import SerialPair

    with _workdir(args.workdir) as workdir, SerialPair() as (sim_tty, gateway_tty):
        (workdir / "gateway").mkdir(exist_ok=True, mode=0o700)
        db_url = f"sqlite:///{workdir / 'backend.db'}"
        stack = _Stack(workdir)
        try:
            print(f"demo: work directory {workdir}")
            broker_port = _start_broker(stack)
            print(f"demo: private Mosquitto on 127.0.0.1:{broker_port}")
            speed = ["--speedup", str(args.speedup)]
            tcp = stack.start(
                "meter-sim-tcp",
                _cli("meter-sim", "--meter", "sdm630:1", "--meter", "sunspec:2", "--tcp", "127.0.0.1:0", *speed),
                ready=r"ready: tcp [\d.]+:(\d+)",
            )
            assert tcp is not None
            stack.start(
                "meter-sim-rtu",
                _cli("meter-sim", "--meter", "sdm120:1", "--meter", "sdm120:2", "--serial", sim_tty, *speed),
                ready=r"ready: rtu",
            )
            print(f"demo: meters on Modbus TCP port {tcp.group(1)} and on RS-485 (pty) {gateway_tty}")
            keygen = subprocess.run(
                _cli("gateway", "keygen", "--out", str(workdir / "gateway" / "device.key"), "--gateway-id", GATEWAY_ID),
                capture_output=True, text=True, check=False,
            )
            match = re.search(r"public key:\s+([0-9a-f]{64})", keygen.stdout)
            if keygen.returncode != 0 or match is None:
                raise DemoError(f"gateway keygen failed: {keygen.stderr or keygen.stdout}")
            gateway_key = bytes.fromhex(match.group(1))
            subprocess.run(
                _cli("backend", "add-gateway", "--id", GATEWAY_ID, "--public-key", match.group(1),
                     "--database", db_url),
                check=True, capture_output=True, text=True,
            )
            print(f"demo: gateway key made (0600) and commissioned on the backend: {match.group(1)[:16]}…")
            ack_key = workdir / "backend-ack.key"
            subprocess.run(_cli("backend", "ack-keygen", "--out", str(ack_key)), check=True, capture_output=True)
            stack.start(
                "backend",
                _cli("backend", "run", "--database", db_url, "--ack-key", str(ack_key),
                     "--mqtt-host", "127.0.0.1", "--mqtt-port", str(broker_port)),
            )
            config = _gateway_config(
                workdir, tcp_port=int(tcp.group(1)), serial=gateway_tty, broker_port=broker_port,
                interval=args.interval, speedup=args.speedup,
            )
            stack.start("gateway", _cli("gateway", "run", "--config", str(config)))
            print(f"demo: gateway running ({config}); logs in {workdir}/*.log\n")
            deadline = time.monotonic() + args.duration
            while time.monotonic() < deadline:
                time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
                stack.check_alive()
                asyncio.run(_report(db_url, final=False))
            # Stop the gateway first and give the backend a moment: what was in flight is acknowledged.
            gateway = next(p for p in stack.procs if p.name == "gateway")
            gateway_rc = gateway.stop()
            time.sleep(1.0)
            print("\ndemo: gateway stopped; what the backend holds:")
            by_meter, quarantined, flagged = asyncio.run(_report(db_url, final=True))
        except DemoError as exc:
            print(f"demo: {exc}", file=sys.stderr)
            return 1
        finally:
            stack.stop_all()
        # The backend has stopped: the minting worker is now the database's only writer.
        from gridtokenx.demo_chain import ChainDemoError, settle_and_trade

        print("\ndemo: settling on an embedded chain (LiteSVM) and trading the surplus:")
        # The chain step prints its own summary; the worker's per-transaction lines are for the logs.
        if logging.getLogger().getEffectiveLevel() >= logging.INFO:
            logging.getLogger("backend.minting.worker").setLevel(logging.WARNING)
        try:
            chain = asyncio.run(settle_and_trade(db_url, GATEWAY_ID, gateway_key, LIVE_METERS))
        except ChainDemoError as exc:
            print(f"demo: {exc}", file=sys.stderr)
            return 1
    return _verdict(by_meter, quarantined, flagged, gateway_rc, traded=chain.trade is not None)


def _verdict(
    by_meter: dict[str, list[int]], quarantined: int, flagged: int, gateway_rc: int, *, traded: bool
) -> int:
    problems = []
    for meter in LIVE_METERS:
        seqs = by_meter.get(meter, [])
        if not seqs:
            problems.append(f"no readings from {meter}")
        elif sorted(seqs) != list(range(min(seqs), min(seqs) + len(seqs))):
            problems.append(f"{meter}: sequence numbers have gaps or repeats")
    if "flat-3" in by_meter:
        problems.append("flat-3 is not on the bus, yet readings arrived for it")
    if quarantined:
        problems.append(f"{quarantined} readings were quarantined")
    if flagged:
        problems.append(f"{flagged} readings were flagged implausible (METER_ERROR)")
    if gateway_rc != 0:
        problems.append(f"the gateway exited with {gateway_rc}")
    if not traded:
        problems.append("no surplus was minted and traded")
    if problems:
        print("demo: FAILED: " + "; ".join(problems), file=sys.stderr)
        return 1
    print("demo: OK — every reading signed, delivered once, verified; sequence numbers gap-free per meter; "
          "surplus minted as GRID and traded for THBC")
    return 0
