"""``gridtokenx demo``: the whole system on one machine, with the commands an operator and its users run.

Simulated meters (Modbus TCP and RTU on a pty pair) → two gateways (sign, outbox, status page) → an MQTT broker
(the system's Mosquitto, else an embedded amqtt) → ``gridtokenx backend run`` with every role — ingest,
minter, indexer, cranks and the api with its market page — on an embedded chain served over JSON-RPC. Then
prosumers, consumers and operators act through ``gridtokenx wallet`` (demo/market.py): register, list
surplus, buy part of an order and the rest of it, cancel, let an order expire, issue / validate / retire a
certificate, issue THBC against deposit references and redeem some. It ends with a summary and the output
of ``gridtokenx verify`` — the independent audit of the chain — and fails if verify finds anything.

    gridtokenx demo            # a minute of trading, then keeps showing progress for --duration; Ctrl-C stops
    gridtokenx demo --fast     # the story once, as fast as it goes (CI runs this: tests/demo/test_demo.py)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from demo.stack import DemoError, Stack, cli

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fast", action="store_true", help="the story once, as fast as it goes, then verify")
    parser.add_argument("--duration", type=float, default=60.0,
                        help="seconds to keep running after the story, showing progress (default 60; not --fast)")
    parser.add_argument("--speedup", type=float, help="simulated seconds per real second (default 600; --fast 3600)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between polls of a meter (default 1)")
    parser.add_argument("--workdir", type=Path, help="keep state and logs here (default: a temporary directory)")
    parser.add_argument("--broker", choices=["auto", "mosquitto", "embedded"], default="auto",
                        help="auto: the system's Mosquitto if installed, else the embedded amqtt broker")


@contextlib.contextmanager
def _workdir(given: Path | None) -> Iterator[Path]:
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="gridtokenx-demo-") as tmp:
        yield Path(tmp)


def _query(database: str, sql: str) -> list[tuple[object, ...]]:
    path = database[len("sqlite://"):]
    with contextlib.closing(sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)) as db:
        return [tuple(r) for r in db.execute(sql).fetchall()]


def _figures(database: str) -> dict[str, int]:
    """What the backend's database says (the indexer's D1-D7): for progress lines and the summary."""
    def one(sql: str) -> int:
        return int(str(_query(database, sql)[0][0] or 0))

    return {
        "readings": one("SELECT count(*) FROM readings"),
        "minted_readings": one("SELECT count(*) FROM reading_states WHERE state = 'MINTED'"),
        "grid_minted": one("SELECT sum(minted_base_units) FROM meters"),
        "orders": one("SELECT count(*) FROM orders"),
        "trades": one("SELECT count(*) FROM trades"),
        "thbc_paid": one("SELECT sum(cost) FROM trades"),
        "fees": one("SELECT sum(fee) FROM trades"),
        "issued": one("SELECT sum(amount) FROM payments WHERE kind = 'ISSUE'"),
        "redeemed": one("SELECT sum(amount) FROM payments WHERE kind = 'REDEEM'"),
        "certificates": one("SELECT count(*) FROM certificates"),
        "retired": one("SELECT count(*) FROM certificates WHERE status = 'RETIRED'"),
    }


def _progress(database: str, started: float) -> None:
    f = _figures(database)
    print(f"  [{time.monotonic() - started:5.1f} s] backend: {f['readings']} readings stored, {f['minted_readings']} "
          f"settled, {f['grid_minted'] / 10**9:.3f} kWh GRID minted, {f['orders']} orders, {f['trades']} trades",
          flush=True)


def _summary(database: str) -> None:
    f = _figures(database)
    states = ", ".join(f"{n} {str(s).lower()}" for s, n in _query(database, "SELECT state, count(*) FROM orders "
                                                                          "GROUP BY state ORDER BY state"))
    print("\ndemo: summary (from the backend's database, which only the indexer writes):")
    print(f"  readings      {f['readings']} signed readings stored, {f['minted_readings']} MINTED (settled, or "
          "covered by a later settlement of their meter)")
    print(f"  minted        {f['grid_minted'] / 10**9:.3f} kWh of GRID for net generation above each meter's mark")
    for meter, minted in _query(database, "SELECT meter_id, minted_base_units FROM meters ORDER BY meter_id"):
        print(f"                  {meter:<12} {int(str(minted)) / 10**9:.3f} kWh")
    print(f"  orders        {f['orders']} ({states})")
    print(f"  trades        {f['trades']}, {f['thbc_paid'] / 10**6:.6f} THBC paid ({f['fees'] / 10**6:.6f} in fees)")
    print(f"  THBC          {f['issued'] / 10**6:.2f} issued against deposits, {f['redeemed'] / 10**6:.2f} redeemed")
    print(f"  certificates  {f['certificates']} issued, {f['retired']} retired")


def _verify(site: object, workdir: Path) -> int:
    from demo.site import Site

    assert isinstance(site, Site)
    b = site.backend
    print("\ndemo: gridtokenx verify — the chain audited on its own, the backend's database compared with it:")
    done = subprocess.run(cli("verify", "--chain", b.rpc_url, "--deployment", str(b.deployment), "--readings",
                              b.database, "--database", b.database), capture_output=True, text=True, timeout=120)
    print("\n".join(f"  {line}" for line in done.stdout.splitlines()), flush=True)
    if done.returncode not in (0, 1):
        print(done.stderr)
    return done.returncode


async def _story(site: object, workdir: Path, started: float) -> None:
    from demo.market import Market
    from demo.site import Site

    assert isinstance(site, Site)
    market = Market(site, workdir, started)
    try:
        await market.run()
    finally:
        await market.close()


def _settle_down(stack: Stack, database: str, started: float) -> None:
    """Stop the gateways, then wait until the minter has settled what arrived and the indexer has applied
    everything: the audit then sees one quiet chain."""
    from demo.site import GATEWAYS

    for gateway in GATEWAYS:
        stack.proc(gateway).stop()
    print(f"  [{time.monotonic() - started:5.1f} s] gateways stopped; letting the minter and the indexer catch up",
          flush=True)
    last, steady_since = None, time.monotonic()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = (_figures(database), _query(database, "SELECT max(position) FROM chain_cursor"))
        if now != last:
            last, steady_since = now, time.monotonic()
        elif time.monotonic() - steady_since > 2.5:
            return
        time.sleep(0.25)


def run(args: argparse.Namespace) -> int:
    from meter_sim.serial_pair import SerialPair

    from demo.site import LIVE_METERS, start_site

    speedup = args.speedup or (3600.0 if args.fast else 600.0)
    started = time.monotonic()
    code = 0
    with _workdir(args.workdir) as workdir, SerialPair() as (sim_tty, gateway_tty):
        stack = Stack(workdir)
        try:
            print(f"demo: work directory {workdir} (every process's log is there)", flush=True)
            site = start_site(stack, broker=args.broker, interval=0.5 if args.fast else args.interval,
                              speedup=speedup, fast=args.fast, sim_tty=sim_tty, gateway_tty=gateway_tty)
            for gateway, url in site.status_urls.items():
                print(f"demo: gateway {gateway} status page  {url}")
            print(f"demo: market page                 {site.backend.market_url}")
            print(f"demo: chain (JSON-RPC)            {site.backend.rpc_url}")
            print(f"demo: meters {', '.join(LIVE_METERS)} live; flat-3 configured but dead\n", flush=True)
            try:
                asyncio.run(_story(site, workdir, started))
                if not args.fast:
                    deadline = time.monotonic() + args.duration
                    print(f"\ndemo: running for {args.duration:.0f} s more (Ctrl-C stops)", flush=True)
                    while time.monotonic() < deadline:
                        time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
                        stack.check_alive()
                        _progress(site.backend.database, started)
            except KeyboardInterrupt:
                print("\ndemo: Ctrl-C — stopping the gateways, then the summary and the audit", flush=True)
                code = 130
            stack.check_alive()
            _settle_down(stack, site.backend.database, started)
            _summary(site.backend.database)
            verified = _verify(site, workdir)
            if verified != 0:
                print("demo: FAILED — gridtokenx verify found discrepancies (above)")
                code = code or 1
            elif code == 0:
                print(f"\ndemo: OK in {time.monotonic() - started:.0f} s — meters → gateways → broker → backend → "
                      "chain → market, and verify accounts for every GRID token")
        except DemoError as exc:
            print(f"demo: {exc}", flush=True)
            code = 1
        except KeyboardInterrupt:
            print("\ndemo: Ctrl-C — stopping", flush=True)
            code = 130
        finally:
            stack.stop_all()
    return code
