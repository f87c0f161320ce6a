"""The api over real HTTP for tests, wired as ``gridtokenx backend run --roles indexer,api`` wires it:
the service's own context (``backend.service.open_context``: PostgreSQL, the live feed — in-process, or
Redis with ``redis_prefix`` —, the embedded chain with every program deployed, kept under ``tmp_path``),
the real indexer (``backend.service.indexer_for``) following the chain in the background, and uvicorn on
a free port in the test's event loop. Test wallets sign locally.

Only the indexer writes what the chain did (D1 registrations and meters, D3-D7). ``POST /transactions``
answers once the indexer has applied the transaction; after a transaction a test sends to the chain
itself (what the minter or the crank would send), :meth:`RunningApi.indexed` waits for the indexer.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from solders.keypair import Keypair
from solders.transaction import Transaction

from backend.api import ApiSettings, ChainAddresses, create_app
from backend.api.context import ApiContext
from backend.chain.embedded import EmbeddedDeployment
from backend.chain.persistent import PersistentLiteSVMChain
from backend.config import load_config
from backend.feed import Feed
from backend.indexer import Indexer
from backend.service import indexer_for, open_context
from backend.storage import Storage, events
from programs.client.chain import RpcChain

DOMAIN = "market.test:8080"
URI = "http://market.test:8080"
REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass
class RunningApi:
    url: str
    app: FastAPI
    storage: Storage
    chain: PersistentLiteSVMChain
    deployment: EmbeddedDeployment
    admin: Keypair
    relayer: Keypair  # the backend's fee payer (what the minter and the crank send with)
    http: httpx.AsyncClient
    settings: ApiSettings
    indexer: Indexer
    feed: Feed
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ctx(self) -> ApiContext:
        ctx: ApiContext = self.app.state.ctx
        return ctx

    async def indexed(self, within_s: float = 10.0) -> None:
        """Wait until the indexer has applied every transaction the chain executed so far."""
        target = self.chain.journal_position
        deadline = time.monotonic() + within_s
        while True:
            cursor = await events.get_cursor(self.storage, "embedded")
            if cursor is not None and cursor.position >= target:
                return
            assert time.monotonic() < deadline, f"the indexer is at {cursor}, the chain at {target}"
            self.indexer.wake()
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def serve(app: FastAPI, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Run ``app`` under uvicorn on a free port; yield its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=0, log_level="warning", lifespan="on",
                                           ws="websockets-sansio"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("uvicorn stopped before it started")
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@contextlib.asynccontextmanager
async def running_api(pg_url: str, tmp_path: Path, *, settings: dict[str, Any] | None = None,
                      redis_prefix: str | None = None, over_rpc: bool = False,
                      **app_overrides: Any) -> AsyncIterator[RunningApi]:
    """The api, the indexer and the embedded chain on ``pg_url``. ``settings``: ``[api]`` keys;
    ``redis_prefix``: use the machine's Redis (feed channel ``<prefix>:events``, keys ``<prefix>:…``);
    ``over_rpc``: the embedded chain is also served over JSON-RPC (``[chain] listen``, the localnet) and the
    api talks to it through ``RpcChain``, as it does to a cluster; ``app_overrides``: more ``create_app``
    arguments (``fee_payer``, ``broker``, ``nonces``)."""
    api: dict[str, Any] = {"domain": DOMAIN, "uri": URI, "chain_id": "localnet",
                           "token_key_file": tmp_path / "token.key", **(settings or {})}
    redis: dict[str, Any] = {}
    if redis_prefix is not None:
        redis = {"url": REDIS_URL, "channel_prefix": redis_prefix}
        api["redis_prefix"] = f"{redis_prefix}:"
    chain: dict[str, Any] = {}
    if over_rpc:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            chain["listen"] = f"127.0.0.1:{probe.getsockname()[1]}"
    config = load_config(None, roles=["indexer", "api"], data_dir=tmp_path / "backend", database={"url": pg_url},
                         indexer={"interval_s": 0.05}, redis=redis, api=api, chain=chain)
    async with open_context(config) as ctx, contextlib.AsyncExitStack() as stack:
        embedded = ctx.embedded
        assert embedded is not None and ctx.chain is not None and ctx.deployment is not None
        api_chain: Any = ctx.chain
        if over_rpc:
            api_chain = await stack.enter_async_context(
                RpcChain(f"http://{chain['listen']}", poll_interval=0.02, timeout=10))
        operators = [str(embedded.admin.pubkey()), str(embedded.payment_gateway.pubkey())]
        config.api.operators = [*operators, *config.api.operators]
        indexer = indexer_for(ctx)
        ctx.roles["indexer"] = indexer
        following = asyncio.create_task(indexer.run(config.indexer.interval_s), name="test-indexer")

        async def stop_indexer() -> None:
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await following

        stack.push_async_callback(stop_indexer)
        client = None
        if ctx.config.redis_url is not None:
            import redis.asyncio as aioredis

            client = aioredis.from_url(ctx.config.redis_url)
            stack.push_async_callback(_forget, client, config.api.redis_prefix)
        app = create_app(storage=ctx.storage, chain=api_chain, addresses=ChainAddresses.from_deployment(ctx.deployment),
                         settings=config.api, feed=ctx.feed, redis=client,
                         on_submitted=lambda _signature: indexer.wake(), **app_overrides)
        url = await stack.enter_async_context(serve(app))
        http = await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=30))
        running = RunningApi(url, app, ctx.storage, embedded.chain,
                             EmbeddedDeployment(embedded.deployment, embedded.payment_gateway), embedded.admin,
                             embedded.relayer, http, config.api, indexer, ctx.feed, {"redis": client})
        await running.indexed()  # the deployment's own transactions
        yield running


async def _forget(client: Any, prefix: str) -> None:
    """Remove this test's keys from the shared Redis, then close the client."""
    keys = [k async for k in client.scan_iter(f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


class TestWallet:
    """A wallet whose key stays in the test: it signs sign-in messages and transactions locally."""

    __test__ = False

    def __init__(self, key: Keypair | None = None) -> None:
        self.key = key or Keypair()
        self.token: str | None = None

    @property
    def address(self) -> str:
        return str(self.key.pubkey())

    def headers(self) -> dict[str, str]:
        assert self.token, "sign in first"
        return {"Authorization": f"Bearer {self.token}"}

    async def sign_in(self, http: httpx.AsyncClient) -> dict[str, Any]:
        challenge = (await http.post("/auth/nonce", json={"address": self.address})).json()
        message = challenge["message"]
        signature = self.key.sign_message(message.encode())
        reply = await http.post("/auth/login", json={"message": message, "signature": str(signature)})
        assert reply.status_code == 200, reply.text
        session: dict[str, Any] = reply.json()
        self.token = session["token"]
        return session

    def sign(self, prepared: dict[str, Any]) -> str:
        """Sign a prepared transaction locally, as a wallet's signTransaction does; base64 back."""
        tx = Transaction.from_bytes(base64.b64decode(prepared["transaction"]))
        message = tx.message
        signers = list(message.account_keys[: message.header.num_required_signatures])
        signatures = list(tx.signatures)
        signatures[signers.index(self.key.pubkey())] = self.key.sign_message(bytes(message))
        return base64.b64encode(bytes(Transaction.populate(message, signatures))).decode()

    async def sign_and_submit(self, http: httpx.AsyncClient, prepared: dict[str, Any]) -> httpx.Response:
        """Sign a prepared transaction locally and POST it back."""
        return await http.post("/transactions", headers=self.headers(),
                               json={"intent": prepared["intent"], "transaction": self.sign(prepared)})

    async def act(self, http: httpx.AsyncClient, method: str, path: str, body: Any = None) -> dict[str, Any]:
        """Ask for a transaction, sign it, submit it; assert both steps succeed and that the answer came
        once the indexer had applied it (so what the test reads next shows it)."""
        reply = await http.request(method, path, json=body, headers=self.headers())
        assert reply.status_code in (200, 201), reply.text
        done = await self.sign_and_submit(http, reply.json())
        assert done.status_code == 200, done.text
        result: dict[str, Any] = done.json()
        assert result["indexed"] is True, result
        return result
