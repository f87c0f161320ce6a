"""What every route needs, built once by the app factory and handed to routes as a dependency."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from backend.api.auth.nonces import NonceStore
from backend.api.auth.tokens import Tokens
from backend.api.health import Check
from backend.api.metrics import ApiMetrics, PipelineFigures
from backend.api.settings import ApiSettings
from backend.storage import Storage
from programs.client.chain import Chain
from programs.deployment import Deployment

__all__ = ["ApiContext", "ChainAddresses", "context"]


@dataclass(frozen=True)
class ChainAddresses:
    """Where our programs and mints are (from the embedded deployment or the deployment file)."""

    registry: Pubkey
    energy_token: Pubkey
    trading: Pubkey
    certificates: Pubkey
    grid_mint: Pubkey
    thbc_mint: Pubkey
    fee_account: Pubkey
    payments: Pubkey

    @classmethod
    def from_deployment(cls, d: Deployment) -> ChainAddresses:
        """From a deployment (the embedded chain's, or the file `gridtokenx programs deploy` wrote)."""
        return cls(d.registry, d.energy_token, d.trading, d.certificates, d.grid_mint, d.thbc_mint, d.fee_account,
                   d.payments)

    @classmethod
    def from_embedded(cls, deployment: Any) -> ChainAddresses:
        """From a backend.chain.embedded.EmbeddedDeployment."""
        return cls.from_deployment(deployment.deployment)


@dataclass
class ApiContext:
    settings: ApiSettings
    storage: Storage
    chain: Chain
    addresses: ChainAddresses
    tokens: Tokens
    nonces: NonceStore
    metrics: ApiMetrics
    feed: Any = None  # backend.feed: subscribe() → async iterator of events
    redis: Any = None
    fee_payer: Keypair | None = None
    checks: dict[str, Check | None] = field(default_factory=dict)
    figures: PipelineFigures | None = None
    operators: frozenset[str] = frozenset()
    on_submitted: Callable[[str], None] | None = None


def context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx
