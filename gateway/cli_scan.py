"""``gridtokenx gateway scan (--serial DEV | --tcp HOST:PORT)``: which unit ids answer, as what.

Each device is named by what it reports about itself (Eastron meter code, SunSpec common model), or as
an unknown Modbus device. A short timeout keeps it quick (an empty unit costs one timeout). Over TCP the
probes share one connection, one request at a time unless ``--concurrency`` says more (pipelined by
transaction id): many Modbus TCP <-> RS-485 converters accept a single connection and answer one request
at a time. A server that answers every unit id (it ignores the unit id) is reported as one device.

Prints one line per device found. Exit status 0 when at least one readable meter was found, 1 when
none, 2 for bad arguments or a port / host that cannot be opened.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--serial", metavar="DEV", help="RS-485 serial device, e.g. /dev/ttyUSB0")
    where.add_argument("--tcp", metavar="HOST:PORT", help="Modbus TCP gateway or meter")
    parser.add_argument("--baud", type=int, default=9600, help="serial baud rate (default 9600)")
    parser.add_argument("--parity", choices=["N", "E", "O"], default="N", help="serial parity (default N)")
    parser.add_argument("--stopbits", type=int, choices=[1, 2], default=1, help="serial stop bits (default 1)")
    parser.add_argument("--units", default="1-247", help="unit ids to probe, e.g. 1-10,20 (default 1-247)")
    parser.add_argument(
        "--timeout", type=float, default=0.1, metavar="S", help="seconds to wait per probe (default 0.1)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=1,
        metavar="N",
        help="TCP: requests outstanding at once on the one connection (default 1, safe for converters)",
    )


def _split_host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"--tcp {text!r}: expected HOST:PORT")
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"--tcp {text!r}: port {port!r} is not a number") from None
    if not 1 <= number <= 65535:
        raise ValueError(f"--tcp {text!r}: port must be 1..65535")
    return host.strip("[]"), number


async def _scan(bus: Any, units: list[int], response_timeout: float, concurrency: int) -> list[Any]:
    from gateway.scan import scan

    async with bus:
        return await scan(bus, units, response_timeout=response_timeout, concurrency=concurrency)


def run(args: argparse.Namespace) -> int:
    from gateway.errors import BusUnavailable
    from gateway.logs import quiet_for_tools
    from gateway.scan import answers_everything, format_units, parse_units, same_device
    from gateway.transport import Bus, RtuBus, TcpBus

    prog = "gridtokenx gateway scan"
    quiet_for_tools()
    try:
        units = parse_units(args.units)
        if not 0 < args.timeout <= 10:
            raise ValueError("--timeout must be between 0 and 10 seconds")
        if not 1 <= args.concurrency <= 16:
            raise ValueError("--concurrency must be 1..16")
        bus: Bus
        if args.serial:
            bus = RtuBus("scan", args.serial, baudrate=args.baud, parity=args.parity, stopbits=args.stopbits)
            where = f"{args.serial} at {args.baud} baud"
        else:
            host, port = _split_host_port(args.tcp)
            bus = TcpBus("scan", host, port, max_connections=1, pipeline=args.concurrency)
            where = f"{host}:{port}"
    except ValueError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2

    print(f"scanning {len(units)} unit ids on {where} ({args.timeout * 1000:.0f} ms per probe)", flush=True)
    started = time.monotonic()
    try:
        hits = asyncio.run(_scan(bus, units, args.timeout, args.concurrency))
    except BusUnavailable as exc:
        print(f"{prog}: {exc.detail}", file=sys.stderr)
        return 2
    repeats = same_device(hits)
    echoes = {u for group in repeats.values() for u in group[1:]}
    for hit in hits:
        if hit.unit in echoes:
            continue
        print(f"unit {hit.unit:3d}  {hit.model or '-':<8} {hit.detail}", flush=True)
    for serial, group in repeats.items():
        print(f"warning: units {format_units(group)} all report serial {serial}: ONE device answering several "
              "unit ids (it ignores the unit id); configure it once, at one unit id", flush=True)
    if answers_everything(hits, units) and not repeats:
        print(f"warning: every probed unit id ({format_units(units)}) answers: this server probably ignores the "
              "unit id; the devices listed may all be one", flush=True)
    elapsed = time.monotonic() - started
    found = sum(1 for h in hits if h.model is not None and h.unit not in echoes)
    print(f"found {found} meter{'s' if found != 1 else ''} in {len(units)} unit ids ({elapsed:.1f} s)")
    return 0 if found else 1
