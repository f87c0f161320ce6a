"""``gridtokenx meter-sim``: serve simulated meters over Modbus TCP or RTU until SIGINT/SIGTERM.

Examples::

    gridtokenx meter-sim --model sdm630 --unit 1 --tcp 127.0.0.1:5020
    gridtokenx meter-sim --meter sdm120:1 --meter sdm630:2 --serial /dev/ttyUSB0 --baud 9600
    gridtokenx meter-sim --model sunspec --unit 3 --sunspec-float --tcp 0.0.0.0:502 --speedup 60
    gridtokenx meter-sim --model sdm630 --unit 1 --tcp 127.0.0.1:0 --fault 1:slow --delay 0.8 --fault-after 30

Once listening it prints one line to stdout, ``meter-sim ready: tcp HOST:PORT units 1,2`` (or
``rtu DEVICE``), so scripts can start it with port 0 and learn the port. SIGUSR1 resets every
meter's energy counters (the counter-reset fault, on demand).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import signal
import sys
from dataclasses import dataclass, field
from typing import Any

from meter_sim.devices import MODELS
from meter_sim.errors import ConfigError, MeterSimError
from meter_sim.meter import DEFAULT_START_HOUR, SimMeter
from meter_sim.server import RtuServer, TcpServer, serve_rtu, serve_tcp

log = logging.getLogger("meter_sim")

PLAUSIBILITY_MARGIN = 1.5
"""gateway.plausibility's default margin over max_power_w (energy may grow at rated power x 1.5)."""

FAULT_KINDS = ("no-response", "exception", "slow", "corrupt", "unsolicited", "counter-reset")


@dataclass(frozen=True)
class FaultSpec:
    kind: str
    unit: int | None
    """None: every meter."""


@dataclass
class SimConfig:
    meters: list[tuple[str, int]]
    tcp: tuple[str, int] | None
    serial: str | None
    baud: int = 9600
    parity: str = "N"
    stopbits: int = 1
    wire_time: bool = True
    speedup: float = 1.0
    seed: int = 0
    start_hour: float = DEFAULT_START_HOUR
    sunspec_float: bool = False
    sunspec_energy_sf: int = 0
    faults: list[FaultSpec] = field(default_factory=list)
    exception_code: int = 4
    delay_s: float = 1.0
    fault_after_s: float = 0.0
    fault_for_s: float = 0.0
    max_connections: int | None = None
    answer_any_unit: bool = False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__.split("\n\n", 1)[1] if __doc__ else None
    meters = parser.add_argument_group("meters")
    meters.add_argument("--model", choices=sorted(MODELS), help="meter model for every --unit")
    meters.add_argument("--unit", type=int, action="append", default=[], metavar="N",
                        help="Modbus unit id 1..247; repeat for several meters of --model on one bus")
    meters.add_argument("--meter", action="append", default=[], metavar="MODEL:UNIT",
                        help="one meter of its own model, e.g. sdm120:1; repeatable, combines with --unit")
    where = parser.add_argument_group("transport (one of)").add_mutually_exclusive_group(required=True)
    where.add_argument("--tcp", metavar="HOST:PORT", help="Modbus TCP; port 0 picks a free port")
    where.add_argument("--serial", metavar="DEVICE", help="Modbus RTU on a serial device or pty")
    where_tcp = parser.add_argument_group("TCP")
    where_tcp.add_argument("--max-connections", type=int, default=None, metavar="N",
                           help="accept at most N client connections and close any beyond (as many Modbus "
                                "TCP <-> RS-485 converters do); default: no limit")
    parser.add_argument("--answer-any-unit", action="store_true",
                        help="the first meter also answers every unit id nobody has (a device that ignores "
                             "the unit id)")
    rtu = parser.add_argument_group("RTU")
    rtu.add_argument("--baud", type=int, default=9600, help="baud rate (default 9600)")
    rtu.add_argument("--parity", choices=("N", "E", "O"), default="N")
    rtu.add_argument("--stopbits", type=int, choices=(1, 2), default=1)
    rtu.add_argument("--no-wire-time", action="store_true",
                     help="answer at once instead of after the RS-485 wire time (for a real serial line)")
    sim = parser.add_argument_group("simulation")
    sim.add_argument("--speedup", type=float, default=1.0,
                     help="simulated seconds per real second (default 1; 0 freezes the meters). Energy counters "
                          "then grow SPEEDUP times faster than the power the meter shows, so a gateway polling "
                          "them needs max_power_w raised to match, or its plausibility check flags the "
                          "readings METER_ERROR; the simulator prints the value to configure at start")
    sim.add_argument("--seed", type=int, default=0, help="profile seed (default 0)")
    sim.add_argument("--start-hour", type=float, default=DEFAULT_START_HOUR,
                     help=f"simulated local time at start, hours (default {DEFAULT_START_HOUR})")
    sim.add_argument("--sunspec-float", action="store_true", help="SunSpec: also serve float model 213")
    sim.add_argument("--sunspec-energy-sf", type=int, default=0,
                     help="SunSpec model 203 TotWh_SF exponent (default 0: counters in Wh)")
    faults = parser.add_argument_group("fault injection")
    faults.add_argument("--fault", action="append", default=[], metavar="[UNIT:]KIND",
                        help=f"one of {', '.join(FAULT_KINDS)}, for every meter or only UNIT; repeatable")
    faults.add_argument("--exception-code", type=int, default=4,
                        help="Modbus exception code for the exception fault (default 4, server device failure)")
    faults.add_argument("--delay", type=float, default=1.0, help="seconds added by the slow fault (default 1)")
    faults.add_argument("--fault-after", type=float, default=0.0,
                        help="seconds of healthy service before the faults start (default 0)")
    faults.add_argument("--fault-for", type=float, default=0.0,
                        help="seconds the faults last before the meters recover (default 0: until stopped)")


def _parse_tcp(text: str) -> tuple[str, int]:
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"--tcp {text!r}: expected HOST:PORT, e.g. 127.0.0.1:5020")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"--tcp {text!r}: port {port_text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"--tcp {text!r}: port must be 0..65535")
    return host, port


def _finite(name: str, value: float, errors: list[str]) -> None:
    if not (math.isfinite(value) and value >= 0):
        errors.append(f"{name} must be a finite number >= 0, not {value}")


def config_from_args(args: argparse.Namespace) -> SimConfig:
    """Check the whole command line at once; every problem is named in one ConfigError."""
    errors: list[str] = []
    meters: list[tuple[str, int]] = []
    if args.unit and not args.model:
        errors.append("--unit needs --model (or use --meter MODEL:UNIT)")
    if args.model:
        meters += [(args.model, u) for u in (args.unit or [1])]
    for text in args.meter:
        model, sep, unit_text = text.partition(":")
        if not sep or model not in MODELS or not unit_text.isdigit():
            errors.append(f"--meter {text!r}: expected MODEL:UNIT with MODEL one of {', '.join(sorted(MODELS))}")
            continue
        meters.append((model, int(unit_text)))
    if not meters and not errors:
        errors.append("no meters: give --model [--unit N ...] or --meter MODEL:UNIT")
    seen: set[int] = set()
    for model, unit in meters:
        if not 1 <= unit <= 247:
            errors.append(f"{model} unit {unit}: unit ids are 1..247")
        if unit in seen:
            errors.append(f"unit id {unit} given twice; meters on one bus need distinct ids")
        seen.add(unit)
    tcp = None
    if args.tcp is not None:
        try:
            tcp = _parse_tcp(args.tcp)
        except ConfigError as exc:
            errors.append(str(exc))
    if args.baud <= 0:
        errors.append(f"--baud must be positive, not {args.baud}")
    _finite("--speedup", args.speedup, errors)
    _finite("--delay", args.delay, errors)
    _finite("--fault-after", args.fault_after, errors)
    _finite("--fault-for", args.fault_for, errors)
    if not 0 <= args.start_hour < 8760:
        errors.append(f"--start-hour must be in 0..8760, not {args.start_hour}")
    if args.max_connections is not None and args.max_connections < 1:
        errors.append(f"--max-connections must be at least 1, not {args.max_connections}")
    if args.max_connections is not None and args.tcp is None:
        errors.append("--max-connections applies to --tcp")
    if not 1 <= args.exception_code <= 255:
        errors.append(f"--exception-code must be 1..255, not {args.exception_code}")
    if args.sunspec_float and not any(model == "sunspec" for model, _ in meters):
        errors.append("--sunspec-float applies to sunspec meters, and none is configured")
    if not -10 <= args.sunspec_energy_sf <= 10:
        errors.append(f"--sunspec-energy-sf must be -10..10, not {args.sunspec_energy_sf}")
    faults: list[FaultSpec] = []
    for text in args.fault:
        unit_text, sep, kind = text.rpartition(":")
        target: int | None = None
        if sep:
            if not unit_text.isdigit() or int(unit_text) not in seen:
                errors.append(f"--fault {text!r}: {unit_text!r} is not one of the served unit ids")
                continue
            target = int(unit_text)
        if kind not in FAULT_KINDS:
            errors.append(f"--fault {text!r}: kind must be one of {', '.join(FAULT_KINDS)}")
            continue
        faults.append(FaultSpec(kind, target))
    if errors:
        raise ConfigError("; ".join(errors))
    return SimConfig(
        meters=meters, tcp=tcp, serial=args.serial, baud=args.baud, parity=args.parity,
        stopbits=args.stopbits, wire_time=not args.no_wire_time, speedup=args.speedup, seed=args.seed,
        start_hour=args.start_hour, sunspec_float=args.sunspec_float,
        sunspec_energy_sf=args.sunspec_energy_sf, faults=faults, exception_code=args.exception_code,
        delay_s=args.delay, fault_after_s=args.fault_after, fault_for_s=args.fault_for,
        max_connections=args.max_connections, answer_any_unit=args.answer_any_unit,
    )


def speedup_note(meters: list[SimMeter]) -> str | None:
    """What a gateway polling these meters must configure when time runs faster than real time: its
    plausibility check allows energy to grow at most max_power_w x 1.5 (gateway.plausibility), but here
    it grows SPEEDUP times faster than the power the meter shows."""
    needs: dict[str, int] = {}
    for m in meters:
        if m.speedup > 1:
            bound = math.ceil(m.speedup * m.max_abs_power_w / PLAUSIBILITY_MARGIN)
            needs[m.model] = max(needs.get(m.model, 0), bound)
    if not needs:
        return None
    parts = ", ".join(f"max_power_w = {bound} for {model}" for model, bound in sorted(needs.items()))
    return (f"meter-sim note: --speedup {max(m.speedup for m in meters):g} makes the energy counters grow that "
            f"much faster than real power; configure {parts} in the gateway's [[meter]] entries, or its "
            "plausibility check flags most readings METER_ERROR")


def build_meters(cfg: SimConfig) -> list[SimMeter]:
    return [
        SimMeter(model, unit, seed=cfg.seed, speedup=cfg.speedup, sunspec_float=cfg.sunspec_float,
                 start_hour=cfg.start_hour, sunspec_energy_sf=cfg.sunspec_energy_sf)
        for model, unit in cfg.meters
    ]


def apply_fault(meter: SimMeter, kind: str, cfg: SimConfig) -> None:
    if kind == "no-response":
        meter.faults.no_response = True
    elif kind == "exception":
        meter.faults.exception_code = cfg.exception_code
    elif kind == "slow":
        meter.faults.delay_s = cfg.delay_s
    elif kind == "corrupt":
        meter.faults.corrupt = True
    elif kind == "unsolicited":
        meter.faults.unsolicited = True
    elif kind == "counter-reset":
        meter.reset_counters()
    else:
        raise ConfigError(f"unknown fault kind {kind!r}")


async def _run_faults(meters: dict[int, SimMeter], cfg: SimConfig) -> None:
    if not cfg.faults:
        return
    await asyncio.sleep(cfg.fault_after_s)
    for fault in cfg.faults:
        targets = [meters[fault.unit]] if fault.unit is not None else list(meters.values())
        for m in targets:
            apply_fault(m, fault.kind, cfg)
            log.warning("fault %s on %s unit %d", fault.kind, m.model, m.unit)
    if cfg.fault_for_s > 0:
        await asyncio.sleep(cfg.fault_for_s)
        for m in meters.values():
            m.faults.clear()
        log.warning("faults cleared; meters healthy again")


async def serve(cfg: SimConfig) -> int:
    meters = build_meters(cfg)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def reset_all() -> None:
        for m in meters:
            m.reset_counters()
        log.warning("SIGUSR1: energy counters of all meters reset to 0")

    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, reset_all)
    server: TcpServer | RtuServer
    if cfg.tcp is not None:
        server = serve_tcp(meters, cfg.tcp[0], cfg.tcp[1], max_connections=cfg.max_connections,
                           answer_any_unit=cfg.answer_any_unit)
    else:
        assert cfg.serial is not None
        server = serve_rtu(meters, cfg.serial, cfg.baud, cfg.wire_time, parity=cfg.parity,
                           stopbits=cfg.stopbits, answer_any_unit=cfg.answer_any_unit)
    units = ",".join(str(m.unit) for m in meters)
    try:
        async with server:
            where = (f"tcp {server.host}:{server.port}" if isinstance(server, TcpServer)
                     else f"rtu {server.device}")
            print(f"meter-sim ready: {where} units {units}", flush=True)
            note = speedup_note(meters)
            if note:
                print(note, flush=True)
            for m in meters:
                log.info("%s unit %d: seed %d, speedup %g, %s", m.model, m.unit, m.seed, m.speedup,
                         m.spec.description)
            faults = loop.create_task(_run_faults(server.meters, cfg), name="meter-sim faults")
            waiters: list[asyncio.Task[Any]] = [loop.create_task(stop.wait(), name="meter-sim stop")]
            if isinstance(server, RtuServer):
                waiters.append(loop.create_task(server.wait_closed(), name="meter-sim rtu"))
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in (faults, *waiters):
                    t.cancel()
                await asyncio.gather(faults, *waiters, return_exceptions=True)
            if isinstance(server, RtuServer) and server.error is not None:
                log.error("serial device %s failed: %s", server.device, server.error)
                return 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
            loop.remove_signal_handler(sig)
    log.info("stopped")
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        cfg = config_from_args(args)
    except ConfigError as exc:
        print(f"gridtokenx meter-sim: error: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(serve(cfg))
    except MeterSimError as exc:
        log.error("%s", exc)
        return 1
