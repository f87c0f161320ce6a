"""The indexer: our programs' transactions → decoded events → data stores → live feed, each event once.

For each transaction after the cursor, in execution order (backend/indexer/source.py):

1. decode its events (outside any database transaction: it may read a certificate account);
2. in ONE database transaction (for up to ``commit_every`` transactions): take the apply lock (PostgreSQL
   advisory lock: applies from several indexers are serialised, so event ids follow commit order); for
   each transaction, claim it (``chain_transactions``: one another indexer already applied is skipped),
   write its events and what they change (backend/indexer/apply.py), move the cursor;
3. after the commit, publish the recorded events to the feed.

A crash or an RPC outage anywhere leaves the cursor at the last committed transaction; the next run reads
on from there. A transaction read twice (a restart between commit and the next read, a second indexer)
meets the claim and changes nothing: no gap, no duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from backend.feed import Feed
from backend.indexer.apply import apply_transaction
from backend.indexer.decode import Decoder, LogError
from backend.indexer.source import ChainTransaction, TransactionSource
from backend.storage import Storage, StorageError
from backend.storage import events as store
from backend.storage.events import EventRecord
from programs.client.chain import ChainError
from programs.deployment import Deployment

__all__ = ["Indexer", "IndexerStats"]

log = logging.getLogger(__name__)

_APPLY_LOCK = 0x67747849  # "gtxI"


@dataclass
class IndexerStats:
    runs: int = 0
    transactions: int = 0  # applied by this indexer
    events: int = 0  # recorded by this indexer
    already_applied: int = 0  # read again, skipped by the claim (another indexer, or a restart)
    failed_transactions: int = 0  # on chain but failed: no events
    undecodable: int = 0  # logs that cannot be attributed (truncated): skipped, logged at ERROR
    chain_errors: int = 0
    last_slot: int = 0


class Indexer:
    def __init__(self, storage: Storage, source: TransactionSource, decoder: Decoder, deployment: Deployment,
                 feed: Feed, *, commit_every: int = 50) -> None:
        self.storage = storage
        self.source = source
        self.decoder = decoder
        self.deployment = deployment
        self.feed = feed
        # Transactions applied per database transaction: one commit (and one fsync) for many, each still
        # claimed on its own; a crash loses the uncommitted part of a group, which is read again.
        self.commit_every = max(1, commit_every)
        self.stats = IndexerStats()
        self._wake = asyncio.Event()

    async def run_once(self) -> int:
        """Apply the next batch; return how many transactions were read (0: caught up)."""
        self.stats.runs += 1
        batch = await self.source.next_batch(self.storage)
        for start in range(0, len(batch), self.commit_every):
            await self._apply(batch[start: start + self.commit_every])
        async with self.storage.transaction() as db:
            await self.source.finish_batch(db)
        return len(batch)

    async def catch_up(self, *, max_batches: int = 10_000) -> None:
        """Run until a batch finds nothing new."""
        for _ in range(max_batches):
            if await self.run_once() == 0:
                return

    async def _apply(self, group: list[ChainTransaction]) -> None:
        decoded = []
        for tx in group:
            try:
                decoded.append(await self.decoder.decode(tx))
            except LogError as exc:
                self.stats.undecodable += 1
                log.error("indexer: transaction %s (slot %d): %s — its events are skipped", tx.signature, tx.slot,
                          exc)
                decoded.append([])
        records: list[EventRecord] = []
        counted = IndexerStats()
        async with self.storage.transaction() as db:
            if db.dialect == "postgresql":
                await db.execute(f"SELECT pg_advisory_xact_lock({_APPLY_LOCK})")
            for tx, events in zip(group, decoded, strict=True):
                if tx.failed:
                    counted.failed_transactions += 1
                elif await store.claim_transaction(db, tx.signature, slot=tx.slot, position=tx.position,
                                                   block_time=tx.block_time, events=len(events)):
                    records += await apply_transaction(db, tx, events, self.deployment)
                    counted.transactions += 1
                else:
                    counted.already_applied += 1
                await self.source.advance(db, tx)
        self.stats.failed_transactions += counted.failed_transactions
        self.stats.transactions += counted.transactions
        self.stats.already_applied += counted.already_applied
        self.stats.events += len(records)
        self.stats.last_slot = max([self.stats.last_slot, *(tx.slot for tx in group)])
        if records:
            await self.feed.publish(records)

    def wake(self) -> None:
        """Look at the chain now rather than after the current pause (the api submitted a transaction)."""
        self._wake.set()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def run(self, interval: float) -> None:
        """Follow the chain until cancelled: a full batch is followed at once by the next one; outages
        of the chain or the database are logged and retried with a growing delay; :meth:`wake` cuts a
        pause short."""
        delay = interval
        while True:
            try:
                read = await self.run_once()
                delay = interval
            except ChainError as exc:
                self.stats.chain_errors += 1
                log.warning("indexer: chain unreachable (%s); retrying in %.1f s", exc, delay)
                read = 0
                delay = min(delay * 2, 30.0)
            except StorageError as exc:
                if not exc.transient:
                    raise
                log.warning("indexer: database unavailable (%s); retrying in %.1f s", exc, delay)
                read = 0
                delay = min(delay * 2, 30.0)
            if read == 0:
                await self._pause(delay)
