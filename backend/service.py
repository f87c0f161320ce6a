"""``gridtokenx backend run``: one process running the roles its configuration switches on.

    async with open_context(config) as ctx:     # database, feed, chain, deployment, keys — shared by the roles
        await run_roles(ctx)                    # one task per role until SIGTERM/SIGINT, then a clean stop

Roles (``roles = [...]`` in the configuration; docs/backend.md says which may run more than once):

- ``ingest``: MQTT readings → verify → store → ack (backend/ingest/);
- ``minter``: stored readings → settlements on chain → reading states (backend/minting/);
- ``indexer``: our programs' transactions → D1, D3 to D7 → live feed (backend/indexer/);
- ``cranks``: expire orders and certificates whose time has passed (backend/cranks/);
- ``api``: the HTTP/WebSocket server (backend/api/, issue 11) — see :func:`run_api` for the seam.

Each role is an asyncio task owned by :func:`run_roles`; a role that fails stops the process (exit 1: the
service manager restarts it) after the others have been cancelled and every resource closed within
``SHUTDOWN_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from solders.keypair import Keypair
from solders.pubkey import Pubkey

from backend.chain.embedded import EmbeddedChain, open_embedded_chain
from backend.config import BackendConfig, ConfigError, Role
from backend.feed import InProcessFeed, RejectionNotices, open_feed
from backend.storage import Storage, open_storage
from programs.client.chain import Chain, RpcChain
from programs.deployment import Deployment, load_keypair

if TYPE_CHECKING:
    from backend.indexer import Indexer

__all__ = ["ROLE_RUNNERS", "RoleUnavailable", "ServiceContext", "open_context", "run_api", "run_roles"]

log = logging.getLogger(__name__)

SHUTDOWN_S = 15.0
_CHAIN_ROLES = frozenset({"minter", "indexer", "cranks", "api"})


class RoleUnavailable(Exception):
    """A configured role cannot run in this build or configuration; the message says why."""


@dataclass
class ServiceContext:
    """What the roles share. ``chain``/``deployment`` are None when no configured role needs the chain;
    ``relayer`` (the backend's fee payer) is None over RPC when ``[chain] keypair_file`` is not set;
    ``embedded`` is set in embedded mode (the in-process chain, its admin and payment-gateway keys).
    ``roles`` holds each running role's object (Ingest, MintingWorker, Indexer, Cranks) for health and
    metrics."""

    config: BackendConfig
    storage: Storage
    feed: InProcessFeed
    chain: Chain | None = None
    deployment: Deployment | None = None
    relayer: Keypair | None = None
    embedded: EmbeddedChain | None = None
    roles: dict[str, Any] = field(default_factory=dict)

    def require_chain(self, role: str) -> tuple[Chain, Deployment]:
        if self.chain is None or self.deployment is None:
            raise RoleUnavailable(f"the {role} role needs a chain")
        return self.chain, self.deployment

    def require_relayer(self, role: str) -> Keypair:
        if self.relayer is None:
            raise RoleUnavailable(f"the {role} role sends transactions: set [chain] keypair_file (the backend's "
                                  "fee payer, a Solana keypair file)")
        return self.relayer

    async def read_account(self, address: Pubkey) -> bytes | None:
        chain, _ = self.require_chain("indexer")
        account = await chain.get_account(address)
        return None if account is None else bytes(account.data)


@contextlib.asynccontextmanager
async def open_context(config: BackendConfig, *, need_chain: bool | None = None) -> AsyncIterator[ServiceContext]:
    """Open the database, the feed and (when a role needs it) the chain; close them all on exit."""
    async with contextlib.AsyncExitStack() as stack:
        storage = await open_storage(config.database_url)
        stack.push_async_callback(storage.close)
        feed = open_feed(config.redis_url, config.redis.channel_prefix)
        stack.push_async_callback(feed.close)
        ctx = ServiceContext(config, storage, feed)
        if need_chain if need_chain is not None else bool(_CHAIN_ROLES & set(config.roles)):
            await _open_chain(ctx, stack)
        yield ctx


async def _open_chain(ctx: ServiceContext, stack: contextlib.AsyncExitStack) -> None:
    chain_settings = ctx.config.chain
    relayer = load_keypair(chain_settings.keypair_file) if chain_settings.keypair_file is not None else None
    if chain_settings.embedded:
        serving = chain_settings.listen is not None
        # Served over JSON-RPC, other senders sign with blockhashes a moment old and slots follow a timer.
        embedded = await open_embedded_chain(ctx.config.chain_dir, relayer=relayer, blockhash_check=not serving,
                                             slot_per_transaction=not serving)
        stack.callback(embedded.chain.close)
        ctx.embedded, ctx.chain, ctx.deployment, ctx.relayer = embedded, embedded.chain, embedded.deployment, \
            embedded.relayer
        log.info("embedded chain in %s (%d transactions so far)", ctx.config.chain_dir, embedded.chain.journal_length)
        if chain_settings.listen is not None:
            from backend.chain.localnet import LocalnetServer

            host, _, port = chain_settings.listen.rpartition(":")
            server = await stack.enter_async_context(LocalnetServer(embedded.chain, host=host, port=int(port)))
            log.info("embedded chain served over JSON-RPC at %s", server.url)
        return
    assert chain_settings.deployment_file is not None  # BackendConfig requires it with a URL
    ctx.deployment = Deployment.load(chain_settings.deployment_file)
    rpc = RpcChain(chain_settings.url, commitment=chain_settings.commitment,
                   poll_interval=chain_settings.poll_interval_s, timeout=chain_settings.timeout_s)
    stack.push_async_callback(rpc.__aexit__, None, None, None)
    ctx.chain, ctx.relayer = rpc, relayer
    log.info("chain %s (deployment %s)", chain_settings.url, chain_settings.deployment_file)


# --- the roles --------------------------------------------------------------------------------------

async def run_ingest(ctx: ServiceContext) -> None:
    from backend.ingest.pipeline import Ingest
    from backend.ingest.receiver import Receiver

    # Quarantined readings are told live to /ws clients (rate-limited), through Redis to every instance.
    ingest = Ingest(ctx.storage, verify_processes=ctx.config.ingest.effective_verify_processes(),
                    on_rejected=RejectionNotices(ctx.feed))
    ctx.roles["ingest"] = ingest
    try:
        log.info("ingest: broker %s:%d", ctx.config.mqtt.host, ctx.config.mqtt.effective_port)
        await Receiver(ctx.config.mqtt, ingest).run()
    finally:
        ingest.close()
        s = ingest.stats
        log.info("ingest stopped: %d messages, %d stored, %d duplicates, rejected %s", s.messages, s.stored,
                 s.duplicates, dict(s.rejected))


async def run_minter(ctx: ServiceContext) -> None:
    from backend.minting import MintingWorker, MintPolicy

    chain, deployment = ctx.require_chain("minter")
    m = ctx.config.minter
    worker = MintingWorker(ctx.storage, chain, deployment.grid, relayer=ctx.require_relayer("minter"),
                           instance=ctx.config.instance,
                           policy=MintPolicy(max_attempts=m.max_attempts, retry_first_s=m.retry_first_s,
                                             retry_max_s=m.retry_max_s, lease_s=m.lease_s,
                                             concurrency=m.concurrency,
                                             meters_per_transaction=m.meters_per_transaction,
                                             sweep_interval_s=m.sweep_interval_s, late_window=m.late_window))
    ctx.roles["minter"] = worker
    log.info("minter: every %.1f s as %s", m.interval_s, ctx.config.instance)
    await worker.run(m.interval_s)


def indexer_for(ctx: ServiceContext) -> Indexer:
    """The indexer over this context's chain: the embedded journal, or JSON-RPC."""
    from backend.indexer import Decoder, EmbeddedSource, Indexer, RpcSource

    chain, deployment = ctx.require_chain("indexer")
    programs = list(deployment.programs.values())
    source: EmbeddedSource | RpcSource
    if ctx.embedded is not None:
        source = EmbeddedSource(ctx.embedded.chain, programs, page_size=ctx.config.indexer.page_size)
    else:
        assert isinstance(chain, RpcChain)
        source = RpcSource(chain.client, programs, commitment=ctx.config.indexer.commitment,
                           page_size=ctx.config.indexer.page_size)
    return Indexer(ctx.storage, source, Decoder(deployment, ctx.read_account), deployment, ctx.feed)


async def run_indexer(ctx: ServiceContext) -> None:
    indexer = indexer_for(ctx)
    ctx.roles["indexer"] = indexer
    log.info("indexer: following %s", "the embedded journal" if ctx.embedded else ctx.config.chain.url)
    await indexer.run(ctx.config.indexer.interval_s)


async def run_cranks(ctx: ServiceContext) -> None:
    from backend.cranks import Cranks

    chain, deployment = ctx.require_chain("cranks")
    cranks = Cranks(ctx.storage, chain, deployment, payer=ctx.require_relayer("cranks"),
                    batch=ctx.config.cranks.batch)
    ctx.roles["cranks"] = cranks
    log.info("cranks: every %.1f s", ctx.config.cranks.interval_s)
    await cranks.run(ctx.config.cranks.interval_s)


async def run_api(ctx: ServiceContext) -> None:
    """The api role (issue 11): ``backend.api.create_app`` with this process's storage, chain, feed and
    Redis — the app never opens or closes them — served by uvicorn on ``[api] host:port`` and stopped with
    the other roles."""
    import uvicorn

    from backend.api import ChainAddresses, create_app

    chain, d = ctx.require_chain("api")
    addresses = ChainAddresses.from_deployment(d)
    redis_client = None
    if ctx.config.redis_url is not None:
        import redis.asyncio as redis

        redis_client = redis.from_url(ctx.config.redis_url)
    # /healthz reports the broker when this process ingests from it.
    broker = (ctx.config.mqtt.host, ctx.config.mqtt.effective_port) if "ingest" in ctx.config.roles else None
    def submitted(signature: str) -> None:  # the indexer in this process looks at once
        indexer = ctx.roles.get("indexer")
        if indexer is not None:
            indexer.wake()

    app = create_app(storage=ctx.storage, chain=chain, addresses=addresses, settings=ctx.config.api,
                     feed=ctx.feed, redis=redis_client, broker=broker, on_submitted=submitted)

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Any:  # the service owns SIGTERM/SIGINT and stops every role at once
            yield

    server = _Server(uvicorn.Config(app, host=ctx.config.api.host, port=ctx.config.api.port, log_config=None,
                                    access_log=False, lifespan="on"))
    ctx.roles["api"] = server
    serving = asyncio.ensure_future(server.serve())
    try:
        await asyncio.shield(serving)
    except asyncio.CancelledError:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(serving, SHUTDOWN_S)
        raise
    finally:
        if redis_client is not None:
            await redis_client.aclose()


ROLE_RUNNERS: dict[Role, Callable[[ServiceContext], Coroutine[Any, Any, None]]] = {
    "ingest": run_ingest,
    "minter": run_minter,
    "indexer": run_indexer,
    "cranks": run_cranks,
    "api": run_api,
}


async def run_roles(ctx: ServiceContext, roles: list[Role] | None = None) -> int:
    """Run ``roles`` (default: the configured ones) until SIGTERM/SIGINT (exit 0) or until one of them fails
    (exit 1, after the others have stopped)."""
    chosen = roles if roles is not None else ctx.config.roles
    if not chosen:
        raise ConfigError("no roles to run: set roles = [\"ingest\", \"minter\", …]")
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks: dict[asyncio.Task[None], str] = {
        asyncio.create_task(ROLE_RUNNERS[role](ctx), name=f"role-{role}"): role for role in chosen}
    stopper = asyncio.create_task(stop.wait(), name="stop-signal")
    log.info("backend %s running roles %s", ctx.config.instance, ", ".join(chosen))
    try:
        done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    failed = [t for t in done if t is not stopper]
    for task in [*tasks, stopper]:
        task.cancel()
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), SHUTDOWN_S)
    code = 0
    for task, result in zip(tasks, results, strict=True):
        if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
            log.error("role %s failed: %s", tasks[task], result, exc_info=result)
            code = 1
        elif task in failed:
            log.error("role %s stopped on its own", tasks[task])
            code = 1
    log.info("backend %s stopped", ctx.config.instance)
    return code
