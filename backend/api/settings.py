"""The api role's settings: one pydantic model, embedded as ``[api]`` in the backend's configuration.

Secrets never sit in the TOML: the session-token key and the fee payer's keypair are files (0600).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator
from solders.pubkey import Pubkey

__all__ = ["ApiSettings"]


class ApiSettings(BaseModel):
    """``[api]``. ``domain`` and ``uri`` are what sign-in messages must name (a message signed for
    another site is refused); ``operators`` are the wallets allowed to call operator endpoints (activate
    meters, validate/revoke certificates, issue THBC)."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    domain: str = "localhost:8080"
    uri: str = "http://localhost:8080"
    chain_id: str = "localnet"
    statement: str = "Sign in to GridTokenX to trade energy."
    token_key_file: Path = Path("/var/lib/gridtokenx/api-token.key")
    token_ttl_s: int = Field(default=900, ge=30, le=86_400)
    nonce_ttl_s: int = Field(default=300, ge=1, le=3600)
    clock_skew_s: int = Field(default=60, ge=0, le=600)
    operators: list[str] = Field(default_factory=list)
    fee_payer_keypair: Path | None = None  # the backend pays network fees when set; it never signs for users
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    page_limit_default: int = Field(default=50, ge=1)
    page_limit_max: int = Field(default=500, ge=1)
    intent_ttl_s: int = Field(default=120, ge=10, le=3600)
    # POST /transactions answers once the indexer has applied the transaction (so what the wallet reads
    # next shows it), or after this many seconds with "indexed": false; 0: answer at once. Over a cluster
    # indexed at "finalized" this takes some 15 s: lower it there, or read the live feed instead.
    index_wait_s: float = Field(default=10.0, ge=0, le=120)
    book_cache_ttl_s: float = Field(default=2.0, ge=0)
    redis_prefix: str = Field(default="gridtokenx:", max_length=64, description="key prefix in the shared Redis")

    @field_validator("operators")
    @classmethod
    def _wallets(cls, value: list[str]) -> list[str]:
        for wallet in value:
            Pubkey.from_string(wallet)  # raises ValueError: not base58 or not 32 bytes
        return value
