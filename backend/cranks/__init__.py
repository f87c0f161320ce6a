"""Cranks: time-driven transactions nobody else has a reason to send — expire orders and certificates."""

from backend.cranks.expiry import Cranks, CrankStats, CrankSummary, chain_time

__all__ = ["CrankStats", "CrankSummary", "Cranks", "chain_time"]
