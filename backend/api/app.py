"""The api role's ASGI app: ``create_app(...)`` takes its dependencies, so the backend's role runner
(``gridtokenx backend run`` with ``api`` on) starts it with the storage, chain and feed it already has:

    app = create_app(storage=storage, chain=chain, addresses=addresses, settings=config.api,
                     feed=feed, redis=redis, broker=(host, port))
    await uvicorn.Server(uvicorn.Config(app, host=config.api.host, port=config.api.port)).serve()

The app never opens or closes those dependencies: whoever made them owns them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from solders.keypair import Keypair

from backend.api.auth.nonces import NonceStore, RedisNonceStore, SqlNonceStore
from backend.api.auth.tokens import Tokens, load_or_create_key
from backend.api.context import ApiContext, ChainAddresses
from backend.api.errors import install_error_handlers
from backend.api.health import Check, tcp_check
from backend.api.metrics import ApiMetrics, Figure
from backend.api.middleware import BodyLimit, RequestMetrics
from backend.api.routes import auth, certificates, health, meters, orders, payments, trades, transactions, users, ws
from backend.api.settings import ApiSettings
from backend.storage import Storage, events, reading_states
from programs.client.chain import Chain

__all__ = ["API_VERSION", "create_app"]

log = logging.getLogger(__name__)
API_VERSION = "1.0.0"
STATIC = Path(__file__).parent / "static"


def _storage_check(storage: Storage) -> Check:
    async def check() -> str:
        await storage.fetch("SELECT 1")
        return storage.where

    return check


def _chain_check(chain: Chain) -> Check:
    async def check() -> str:
        return f"latest blockhash {await chain.latest_blockhash()}"

    return check


def _redis_check(redis: Any) -> Check:
    async def check() -> str:
        await redis.ping()
        return "PONG"

    return check


async def _pipeline_figures(storage: Storage) -> dict[str, Figure]:
    by_kind = await events.event_counts(storage)
    states = await reading_states.state_counts(storage)
    rejected = await storage.quarantine_counts()
    figures: dict[str, Figure] = {
        "gridtokenx_readings_stored": ("signed readings verified and stored", await storage.reading_count()),
        "gridtokenx_readings_rejected": ("readings quarantined, by reason",
                                         ("reason", {k: float(v) for k, v in rejected.items()})),
        # The lifecycle of stored readings (STORED, PROCESSING, MINTED, FAILED; FAILED split into those
        # still retrying and those given up): a growing FAILED is the minting retry queue backing up.
        "gridtokenx_readings_by_state": ("stored readings by minting state",
                                         ("state", {k: float(v) for k, v in states.items()})),
        "gridtokenx_mints": ("GRID mint settlements the indexer applied (minted events)",
                             float(by_kind.get("minted", 0))),
        "gridtokenx_events_indexed": ("program events the indexer applied, by kind",
                                      ("kind", {k: float(v) for k, v in by_kind.items()})),
    }
    return figures


async def _watch_book(ctx: ApiContext) -> None:
    """Invalidate the cached order book whenever the feed says a trading event was applied."""
    while True:
        try:
            async with ctx.feed.subscribe() as events:
                async for event in events:
                    if event.get("program") == "trading":
                        await orders.invalidate_book(ctx)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("order-book cache watcher failed; restarting in 1 s")
            await asyncio.sleep(1)


def create_app(
    *,
    storage: Storage,
    chain: Chain,
    addresses: ChainAddresses,
    settings: ApiSettings,
    feed: Any = None,
    redis: Any = None,
    broker: tuple[str, int] | None = None,
    fee_payer: Keypair | None = None,
    nonces: NonceStore | None = None,
    on_submitted: Callable[[str], None] | None = None,
) -> FastAPI:
    """The api app. ``feed``: the live event feed (backend.feed); ``redis``: a redis.asyncio client
    (nonces, order-book cache) or None; ``broker``: the MQTT broker reported by /healthz; ``fee_payer``:
    the key that pays network fees (else each wallet pays its own); ``on_submitted``: told the signature
    of every transaction the api submitted (the service wakes its indexer with it, so ``POST
    /transactions`` answers once the transaction is indexed without waiting for the indexer's next poll)."""
    if fee_payer is None and settings.fee_payer_keypair is not None:
        from gridtokenx.keyfile import load_keypair_file

        fee_payer = load_keypair_file(settings.fee_payer_keypair)
    tokens = Tokens(load_or_create_key(settings.token_key_file), issuer=settings.uri, ttl_s=settings.token_ttl_s)
    metrics = ApiMetrics()
    ctx = ApiContext(
        settings=settings,
        storage=storage,
        chain=chain,
        addresses=addresses,
        tokens=tokens,
        nonces=nonces or (RedisNonceStore(redis, settings.redis_prefix + "nonce:") if redis is not None
                          else SqlNonceStore(storage)),
        metrics=metrics,
        feed=feed,
        redis=redis,
        fee_payer=fee_payer,
        checks={
            "database": _storage_check(storage),
            "broker": tcp_check(*broker) if broker else None,
            "chain": _chain_check(chain),
            "redis": _redis_check(redis) if redis is not None else None,
        },
        operators=frozenset(settings.operators),
        on_submitted=on_submitted,
    )

    async def figures() -> dict[str, Figure]:
        return await _pipeline_figures(storage)

    ctx.figures = figures

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        watcher = asyncio.create_task(_watch_book(ctx)) if feed is not None and redis is not None else None
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher

    app = FastAPI(
        title="GridTokenX API",
        version=API_VERSION,
        description="Non-custodial: every mutating call returns a transaction for the wallet to sign, "
                    "and accepts it back signed. Errors are `{\"error\": {\"code\", \"message\"}}`.",
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    install_error_handlers(app)
    for router in (auth.router, users.router, meters.router, orders.router, trades.router, certificates.router,
                   payments.router, transactions.router, ws.router, health.router):
        app.include_router(router)
    # The market page: static files only, served from the package (works offline, nothing from a CDN).
    app.mount("/market", StaticFiles(directory=STATIC, html=True), name="market")

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/market/")

    app.add_middleware(RequestMetrics, metrics=metrics)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    return app
