"""Minting: stored, verified readings → settle_and_mint transactions → reading states (docs/minting.md)."""

from backend.minting.worker import (
    SETTLEMENTS_SCHEMA,
    ChainRetry,
    ChainUnavailable,
    MeterSettlement,
    MintingError,
    MintingStats,
    MintingSummary,
    MintingWorker,
    Outcome,
)

__all__ = [
    "SETTLEMENTS_SCHEMA",
    "ChainRetry",
    "ChainUnavailable",
    "MeterSettlement",
    "MintingError",
    "MintingStats",
    "MintingSummary",
    "MintingWorker",
    "Outcome",
]
