"""Indexer: chain → decoded events → storage (D1, D3 to D7) → live feed, each event applied once.

:mod:`~backend.indexer.source` reads our programs' transactions in order (embedded journal or JSON-RPC),
:mod:`~backend.indexer.decode` decodes our programs' events (attributed to the program that logged them
by ``programs.events``) into one vocabulary, :mod:`~backend.indexer.apply` writes what they change,
:mod:`~backend.indexer.indexer` runs it with the apply-once gate and the cursor.
"""

from backend.indexer.decode import ChainEvent, Decoder
from backend.indexer.indexer import Indexer, IndexerStats
from backend.indexer.source import ChainTransaction, EmbeddedSource, RpcSource, TransactionSource

__all__ = [
    "ChainEvent",
    "ChainTransaction",
    "Decoder",
    "EmbeddedSource",
    "Indexer",
    "IndexerStats",
    "RpcSource",
    "TransactionSource",
]
