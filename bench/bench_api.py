"""The api under load: authenticated order-book reads per second, and WebSocket fan-out latency with
1,000 connected clients.

The api runs in its own process (uvicorn, one worker, PostgreSQL, an embedded LiteSVM chain with every
program, the order book seeded with ``--orders`` open orders); this process is the load. Reads: ``--workers``
concurrent clients, each signed in as its own wallet, GET /orders/book?limit=50 for ``--seconds``.
Fan-out: ``--clients`` WebSocket clients on /ws, then ``--events`` sell orders placed through the api one
after another (each a real signed transaction); for every event, the time from just before the signed
transaction was posted until each client received it.

    python bench/bench_api.py                        # 1,000 clients, 10 s of reads, PostgreSQL
    python bench/bench_api.py --redis                # the order book cached in Redis (127.0.0.1:6379)
    python bench/bench_api.py --clients 200 --seconds 5 --workers 16

The api's process is wired as ``backend run --roles indexer,api`` wires it (backend.service: open_context,
indexer_for): the backend's indexer fills D1-D7 from the embedded chain and publishes to the live feed
(in-process; through Redis with ``--redis``), which /ws fans out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

KWH = 10**9


def _serve(db_url: str, redis: bool, orders: int, ready: Any, stop: Any) -> None:
    asyncio.run(_serve_async(db_url, redis, orders, ready, stop))


async def _serve_async(db_url: str, use_redis: bool, orders: int, ready: Any, stop: Any) -> None:
    import uuid

    import uvicorn
    from nacl.signing import SigningKey
    from solders.keypair import Keypair

    from backend.api import ChainAddresses, create_app
    from backend.config import load_config
    from backend.service import indexer_for, open_context
    from backend.storage import events
    from gridtokenx.reading import Reading, sign
    from programs.energy_token import client as energy
    from programs.energy_token.bootstrap import register_active_meter
    from programs.trading import client as trading

    data_dir = Path(tempfile.mkdtemp(prefix="bench-api-"))
    prefix = f"gtx-bench-{uuid.uuid4().hex[:8]}"
    config = load_config(None, roles=["indexer", "api"], data_dir=data_dir, database={"url": db_url},
                         indexer={"interval_s": 0.05},
                         redis={"url": "redis://127.0.0.1:6379/0", "channel_prefix": prefix} if use_redis else {},
                         api={"domain": "bench.local", "uri": "http://bench.local", "nonce_ttl_s": 600,
                              "token_key_file": data_dir / "token.key", "redis_prefix": f"{prefix}:"})
    async with open_context(config) as ctx:
        embedded, chain = ctx.embedded, ctx.chain
        assert embedded is not None and chain is not None and ctx.deployment is not None
        d = embedded.deployment
        indexer = indexer_for(ctx)
        following = asyncio.create_task(indexer.run(config.indexer.interval_s))
        redis = None
        if use_redis:
            import redis.asyncio as aioredis

            redis = aioredis.Redis(host="127.0.0.1", port=6379)
        # A seller whose meter minted 10**6 kWh (two settled readings), with `orders` open orders at a spread of
        # prices: the book the readers page through. Everything through the programs, recorded by the indexer.
        seller, gateway = Keypair(), SigningKey.generate()
        await chain.fund(seller.pubkey(), 100 * 10**9)
        meter = await register_active_meter(chain, d.grid, embedded.admin, seller, "bench-1", bytes(gateway.verify_key))
        for seq, export_wh in ((1, 0), (2, 10**9)):
            signed = sign(Reading("bench-1", seq, 1_760_000_000_000 + seq, 0, export_wh), gateway)
            (await energy.settle_signed_reading(chain, d.energy_token, d.registry, d.grid_mint, signed,
                                                embedded.relayer)).raise_for_failure()
        now = embedded.chain.now()
        for i in range(orders):
            ix = trading.create_order(d.trading, seller.pubkey(), meter.grid_account, d.grid_mint, i + 1, KWH,
                                      3_000_000 + (i * 7919) % 2_000_000, now + 86_400, max_fee_bps=100)
            (await chain.send_transaction([ix], [seller])).raise_for_failure()
        while (cursor := await events.get_cursor(ctx.storage, "embedded")) is None or \
                cursor.position < embedded.chain.journal_position:  # noqa: ASYNC110 - the indexer is polled
            await asyncio.sleep(0.05)
        app = create_app(storage=ctx.storage, chain=chain, addresses=ChainAddresses.from_deployment(d),
                         settings=config.api, feed=ctx.feed, redis=redis, on_submitted=lambda _: indexer.wake())
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                               ws="websockets-sansio", ws_max_queue=64, backlog=4096))
        task = asyncio.create_task(server.serve())
        while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
            await asyncio.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        ready.send({"port": port, "seed": list(bytes(seller))})
        while not stop.poll():  # noqa: ASYNC110 - the stop signal is a pipe from the parent process
            await asyncio.sleep(0.2)
        server.should_exit = True
        await task
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await following
        if redis is not None:
            keys = [k async for k in redis.scan_iter(f"{prefix}:*")]
            if keys:
                await redis.delete(*keys)
            await redis.aclose()


async def _signed_in(http: Any, key: Any) -> str:
    challenge = (await http.post("/auth/nonce", json={"address": str(key.pubkey())})).json()
    reply = await http.post("/auth/login", json={"message": challenge["message"],
                                                 "signature": str(key.sign_message(challenge["message"].encode()))})
    token: str = reply.json()["token"]
    return token


async def _reads(base: str, workers: int, seconds: float) -> tuple[int, int, list[float]]:
    import httpx
    from solders.keypair import Keypair

    done = errors = 0
    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal done, errors
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            token = await _signed_in(http, Keypair())
            headers = {"Authorization": f"Bearer {token}"}
            while time.monotonic() < deadline:
                start = time.perf_counter()
                reply = await http.get("/orders/book?limit=50", headers=headers)
                latencies.append(time.perf_counter() - start)
                if reply.status_code == 200 and len(reply.json()["items"]) == 50:
                    done += 1
                else:
                    errors += 1

    await asyncio.gather(*(worker() for _ in range(workers)))
    return done, errors, latencies


async def _fanout(base: str, clients: int, events: int, seller_seed: list[int]) -> dict[str, Any]:
    import base64

    import httpx
    import websockets
    from solders.keypair import Keypair
    from solders.transaction import Transaction

    ws_url = base.replace("http://", "ws://") + "/ws"
    received: list[dict[int, float]] = [{} for _ in range(clients)]
    connections = []
    for i in range(clients):
        conn = await websockets.connect(ws_url, max_queue=None, open_timeout=60)
        connections.append(conn)
        if i % 100 == 99:
            await asyncio.sleep(0)
    last_id = 0
    for conn in connections:  # the backlog marker: every client is live before the first event
        while (ready := json.loads(await conn.recv())).get("type") != "ready":
            pass
        last_id = max(last_id, int(ready["last_id"]))

    async def listen(i: int, conn: Any) -> None:
        async for message in conn:
            event = json.loads(message)
            received[i][event["id"]] = time.perf_counter()
            if len(received[i]) >= events:
                return

    listeners = [asyncio.create_task(listen(i, c)) for i, c in enumerate(connections)]
    seller = Keypair.from_bytes(bytes(seller_seed))
    sent: dict[int, float] = {}
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        token = await _signed_in(http, seller)
        headers = {"Authorization": f"Bearer {token}"}
        for k in range(events):
            reply = await http.post("/orders", headers=headers, json={"amount": KWH, "price": 4_000_000})
            if reply.status_code == 403:
                raise SystemExit(f"seller not registered in D1: {reply.text}")
            prepared = reply.json()
            tx = Transaction.from_bytes(base64.b64decode(prepared["transaction"]))
            signatures = list(tx.signatures)
            signatures[0] = seller.sign_message(bytes(tx.message))
            signed = base64.b64encode(bytes(Transaction.populate(tx.message, signatures))).decode()
            start = time.perf_counter()
            done = await http.post("/transactions", headers=headers,
                                   json={"intent": prepared["intent"], "transaction": signed})
            assert done.status_code == 200, done.text
            sent[last_id + 1 + k] = start  # one order_created event per order, in order
            await asyncio.sleep(0.5)  # let the fan-out finish before the next event
    await asyncio.wait_for(asyncio.gather(*listeners), 60)
    for conn in connections:
        await conn.close()
    latencies = []
    for event_id, start in sent.items():
        for r in received:
            arrival = r.get(event_id)
            if arrival is not None:
                latencies.append(arrival - start)
    return {"latencies": latencies, "expected": clients * events}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def _main(args: argparse.Namespace, port: int, seed: list[int]) -> None:
    base = f"http://127.0.0.1:{port}"
    done, errors, latencies = await _reads(base, args.workers, args.seconds)
    print(f"order-book reads (authenticated, 50 orders a page, {args.workers} clients, {args.seconds:.0f} s"
          f"{', Redis cache' if args.redis else ''}): {done / args.seconds:,.0f} reads/s, "
          f"p50 {_pct(latencies, 0.5) * 1000:.1f} ms, p99 {_pct(latencies, 0.99) * 1000:.1f} ms, errors {errors}")
    print(f"FIGURE api_book_reads_per_s {done / args.seconds:.0f} reads/s")
    fan = await _fanout(base, args.clients, args.events, seed)
    lat = fan["latencies"]
    print(f"WebSocket fan-out ({args.clients} clients, {args.events} events, from posting the signed transaction): "
          f"{len(lat)}/{fan['expected']} deliveries, p50 {_pct(lat, 0.5) * 1000:.1f} ms, "
          f"p99 {_pct(lat, 0.99) * 1000:.1f} ms, max {max(lat) * 1000 if lat else float('nan'):.1f} ms")
    print(f"FIGURE ws_fanout_p99_ms {_pct(lat, 0.99) * 1000:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--events", type=int, default=10)
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--redis", action="store_true")
    args = parser.parse_args()
    from tests.support.postgres import temp_database

    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with temp_database() as db_url:
        ctx = multiprocessing.get_context("spawn")
        ready_r, ready_w = ctx.Pipe(duplex=False)
        stop_r, stop_w = ctx.Pipe(duplex=False)
        server = ctx.Process(target=_serve, args=(db_url, args.redis, args.orders, ready_w, stop_r))
        server.start()
        try:
            if not ready_r.poll(180):
                raise SystemExit("the api did not start")
            info = ready_r.recv()
            asyncio.run(_main(args, info["port"], info["seed"]))
        finally:
            stop_w.send(True)
            server.join(30)
            if server.is_alive():
                server.terminate()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
