"""The api over real HTTP for tests: uvicorn on a free port in the test's event loop, PostgreSQL, an
embedded LiteSVM chain with every program deployed, and test wallets that sign locally."""

from __future__ import annotations

import asyncio
import base64
import contextlib
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
from backend.chain.embedded import EmbeddedDeployment, embedded_deployment
from backend.storage import Storage, open_storage
from tests.backend.api.stand_in_indexer import InProcessFeed, ObservedChain, StandInIndexer

DOMAIN = "market.test:8080"
URI = "http://market.test:8080"


@dataclass
class RunningApi:
    url: str
    app: FastAPI
    storage: Storage
    chain: ObservedChain
    deployment: EmbeddedDeployment
    admin: Keypair
    http: httpx.AsyncClient
    settings: ApiSettings
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ctx(self) -> ApiContext:
        ctx: ApiContext = self.app.state.ctx
        return ctx


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
async def running_api(pg_url: str, tmp_path: Path, **overrides: Any) -> AsyncIterator[RunningApi]:
    admin = Keypair()
    chain = ObservedChain()
    deployment = await embedded_deployment(chain, admin)
    operators = [str(admin.pubkey()), str(deployment.payment_gateway.pubkey())]
    settings = ApiSettings(domain=DOMAIN, uri=URI, chain_id="localnet", token_key_file=tmp_path / "token.key",
                           operators=operators, **overrides.pop("settings", {}))
    storage = await open_storage(pg_url)
    addresses = ChainAddresses.from_embedded(deployment)
    feed = InProcessFeed()
    indexer = StandInIndexer(storage, chain, addresses, feed)
    try:
        app = create_app(storage=storage, chain=chain, addresses=addresses, settings=settings,
                         feed=overrides.pop("feed", feed), **overrides)
        async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
            yield RunningApi(url, app, storage, chain, deployment, admin, http, settings,
                             {"indexer": indexer, "feed": feed})
    finally:
        await storage.close()


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
        """Ask for a transaction, sign it, submit it; assert both steps succeed."""
        reply = await http.request(method, path, json=body, headers=self.headers())
        assert reply.status_code in (200, 201), reply.text
        done = await self.sign_and_submit(http, reply.json())
        assert done.status_code == 200, done.text
        result: dict[str, Any] = done.json()
        return result
