"""Minting: stored, verified readings → settle_and_mint transactions → reading states (docs/minting.md)."""

from backend.minting.worker import (
    ChainRetry,
    ChainUnavailable,
    MeterSettlement,
    MintingError,
    MintingStats,
    MintingSummary,
    MintingWorker,
    MintPolicy,
    Outcome,
)

__all__ = [
    "ChainRetry",
    "ChainUnavailable",
    "MeterSettlement",
    "MintPolicy",
    "MintingError",
    "MintingStats",
    "MintingSummary",
    "MintingWorker",
    "Outcome",
]
