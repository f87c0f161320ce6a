"""How fast does the backend mint and index through JSON-RPC? Prints minted meters/s and events indexed/s.

The chain is a separate process (``gridtokenx backend localnet --bare``: LiteSVM behind JSON-RPC) with the
programs deployed by ``gridtokenx programs deploy``; the backend's minter and indexer run here, against
PostgreSQL, through ``RpcChain`` — the code path a real cluster gets.

1. ``--meters`` meters are registered and activated; each gets signed readings through the real ingest.
2. **Minting, first pass**: a fresh meter settles its baseline and its latest reading (two settlements,
   one transaction per meter). **Steady state**: one new reading per meter, several meters per
   transaction, ``--concurrency`` transactions in flight — the figure that matters for a running system.
3. ``--orders`` sell orders, each bought twice: more events.
4. **Indexing**: an indexer reads every transaction of the deployment from the start over
   getSignaturesForAddress/getTransaction into an empty database: events and transactions per second.

Also printed: the CPU seconds this process and the chain process used, and how busy the machine was.

    python bench/bench_indexer_minting.py                         # 200 meters, 100 orders
    python bench/bench_indexer_minting.py --meters 500 --orders 200 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from solders.keypair import Keypair
from spl.token.instructions import create_associated_token_account

from backend.feed import InProcessFeed
from backend.indexer import Decoder, Indexer, RpcSource
from backend.minting import MintingWorker, MintPolicy
from backend.storage import open_storage
from programs.client import RpcChain
from programs.deployment import Deployment, load_keypair, save_keypair
from programs.registry import client as registry
from tests.support import market
from tests.support.chainworld import GATEWAY_ID, GATEWAY_KEY, ingest, reading
from tests.support.postgres import temp_database

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def machine_busy() -> tuple[float, float]:
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    total = sum(values) / _TICK
    return total - (values[3] + values[4]) / _TICK, total


class Meter:
    def __init__(self, chain_pid: int) -> None:
        self.chain_pid = chain_pid

    def __enter__(self) -> Meter:
        self.t = time.perf_counter()
        self.me = cpu_s(os.getpid())
        self.chain = cpu_s(self.chain_pid)
        self.busy = machine_busy()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.t
        self.my_cpu = cpu_s(os.getpid()) - self.me
        self.chain_cpu = cpu_s(self.chain_pid) - self.chain
        busy, total = machine_busy()
        self.machine = (busy - self.busy[0]) / max(total - self.busy[1], 1e-9)

    def line(self) -> str:
        return (f"{self.seconds:.2f} s; CPU: backend {self.my_cpu:.2f} s, chain {self.chain_cpu:.2f} s; "
                f"machine {100 * self.machine:.0f} % busy")


def start_localnet(work: Path) -> tuple[subprocess.Popen[str], str]:
    """The chain as its own process; its JSON-RPC URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "gridtokenx", "--log-level", "WARNING", "backend", "localnet", "--data-dir",
         str(work / "localnet"), "--port", "0", "--bare"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    m = re.search(r"(http://\S+)", line)
    assert m, line
    return proc, m.group(1)


async def run(args: argparse.Namespace, url: str, work: Path, chain_proc: subprocess.Popen[str],
              rpc_url: str) -> None:
    admin = work / "admin.json"
    save_keypair(admin, Keypair())
    relayer = Keypair()
    async with RpcChain(rpc_url, poll_interval=0.01) as chain:
        await chain.fund(load_keypair(admin).pubkey(), 10_000 * 10**9)
        await chain.fund(relayer.pubkey(), 1_000 * 10**9)
        deployed = await asyncio.to_thread(subprocess.run, [
            sys.executable, "-m", "gridtokenx", "--log-level", "WARNING", "programs", "deploy", "--url", rpc_url,
            "--keypair", str(admin), "--out", str(work / "deployment.json")], capture_output=True, text=True)
        assert deployed.returncode == 0, deployed.stderr
        d = Deployment.load(work / "deployment.json")
        authority = load_keypair(admin)
        gateway = load_keypair(work / "payment-gateway.json")

        print(f"setting up {args.meters} meters …", flush=True)
        owners: list[Keypair] = []
        gate = asyncio.Semaphore(16)

        async def register(i: int) -> None:
            async with gate:
                owner = Keypair()
                await chain.fund(owner.pubkey(), 10**9)
                ixs = [registry.register_user(d.registry, owner.pubkey(), registry.UserKind.PROSUMER),
                       registry.register_meter(d.registry, owner.pubkey(), f"m{i}", bytes(GATEWAY_KEY.verify_key)),
                       create_associated_token_account(owner.pubkey(), owner.pubkey(), d.grid_mint)]
                (await chain.send_transaction(ixs, [owner])).raise_for_failure()
                ix = registry.set_meter_status(d.registry, authority.pubkey(),
                                               registry.meter_address(d.registry, f"m{i}")[0],
                                               registry.MeterStatus.ACTIVE)
                (await chain.send_transaction([ix], [authority])).raise_for_failure()
                owners.append(owner)

        await asyncio.gather(*(register(i) for i in range(args.meters)))

        async with await open_storage(url) as storage:
            await storage.add_gateway(GATEWAY_ID, bytes(GATEWAY_KEY.verify_key))
            for start in range(0, args.meters, 200):
                await ingest(storage, *(r for i in range(start, min(start + 200, args.meters))
                                        for r in (reading(f"m{i}", 0, 0, 1_000), reading(f"m{i}", 1, 0, 3_000))))
            policy = MintPolicy(concurrency=args.concurrency, sweep_interval_s=3600)
            worker = MintingWorker(storage, chain, d.grid, relayer=relayer, policy=policy, instance="bench")
            with Meter(chain_proc.pid) as first:
                summary = await worker.run_once()
            assert len(summary.settled) == args.meters, summary.refused or summary.skipped
            print(f"minting, fresh meters (baseline + latest, 2 settlements each): {args.meters} meters in "
                  f"{summary.transactions} transactions: {args.meters / first.seconds:.1f} meters/s — "
                  f"{first.line()}", flush=True)
            await ingest(storage, *(reading(f"m{i}", 2, 0, 4_000) for i in range(args.meters)))
            with Meter(chain_proc.pid) as steady:
                summary = await worker.run_once()
            assert len(summary.settled) == args.meters, summary.refused or summary.skipped
            print(f"minting, steady state (1 new reading per meter): {args.meters} meters in "
                  f"{summary.transactions} transactions ({args.meters / summary.transactions:.1f} per "
                  f"transaction, {args.concurrency} in flight): {args.meters / steady.seconds:.1f} meters/s — "
                  f"{steady.line()}", flush=True)
            print(f"FIGURE minted_meters_per_s {args.meters / steady.seconds:.1f} meters/s", flush=True)

        print(f"trading: {args.orders} orders, each bought twice …", flush=True)
        buyer = await market.new_wallet(chain, d, thbc=10**15, payment_gateway=gateway)
        now = await market.chain_now(chain)

        async def trade(i: int) -> None:
            async with gate:
                seller = await market.existing_wallet(chain, d, owners[i % len(owners)])
                oid = 1_000 + i
                await market.create_order(chain, d, seller, oid, 10**6, 3_500_000, now + 3_600)
                await market.buy(chain, d, buyer, seller, oid, 4 * 10**5)
                await market.buy(chain, d, buyer, seller, oid, 4 * 10**5)

        await asyncio.gather(*(trade(i) for i in range(args.orders)))

    with temp_database() as fresh_url:
        async with await open_storage(fresh_url) as fresh, RpcChain(rpc_url) as chain:

            async def read(address: object) -> bytes | None:
                account = await chain.get_account(address)  # type: ignore[arg-type]
                return None if account is None else bytes(account.data)

            indexer = Indexer(fresh, RpcSource(chain.client, list(d.programs.values()), page_size=500),
                              Decoder(d, read), d, InProcessFeed())
            with Meter(chain_proc.pid) as indexing:
                await indexer.catch_up()
            s = indexer.stats
            print(f"indexing from scratch over JSON-RPC: {s.events} events in {s.transactions} transactions: "
                  f"{s.events / indexing.seconds:.0f} events/s, {s.transactions / indexing.seconds:.0f} "
                  f"transactions/s — {indexing.line()}", flush=True)
            print(f"FIGURE indexer_events_per_s {s.events / indexing.seconds:.0f} events/s", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--meters", type=int, default=200)
    parser.add_argument("--orders", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=8, help="settlement transactions in flight")
    parser.add_argument("--database", help="PostgreSQL URL (default: a throw-away database on the local server)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        chain_proc, rpc_url = start_localnet(Path(tmp))
        try:
            if args.database:
                asyncio.run(run(args, args.database, Path(tmp), chain_proc, rpc_url))
            else:
                with temp_database() as url:
                    asyncio.run(run(args, url, Path(tmp), chain_proc, rpc_url))
        finally:
            chain_proc.terminate()
            chain_proc.wait(15)
            if chain_proc.stdout is not None:
                chain_proc.stdout.close()


if __name__ == "__main__":
    main()
