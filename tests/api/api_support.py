"""The api over real HTTP for tests: uvicorn on a free port in the test's event loop, PostgreSQL, an
embedded LiteSVM chain with every program deployed, and test wallets that sign locally."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from solders.keypair import Keypair

from backend.api import ApiSettings, ChainAddresses, create_app
from backend.api.context import ApiContext
from backend.chain.embedded import EmbeddedDeployment, embedded_deployment
from backend.storage import Storage, open_storage
from programs.client.chain import LiteSVMChain

DOMAIN = "market.test:8080"
URI = "http://market.test:8080"


@dataclass
class RunningApi:
    url: str
    app: FastAPI
    storage: Storage
    chain: LiteSVMChain
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
    chain = LiteSVMChain()
    deployment = await embedded_deployment(chain, admin)
    settings = ApiSettings(domain=DOMAIN, uri=URI, chain_id="localnet", token_key_file=tmp_path / "token.key",
                           operators=[str(admin.pubkey())], **overrides.pop("settings", {}))
    storage = await open_storage(pg_url)
    try:
        app = create_app(storage=storage, chain=chain, addresses=ChainAddresses.from_embedded(deployment),
                         settings=settings, **overrides)
        async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
            yield RunningApi(url, app, storage, chain, deployment, admin, http, settings)
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
