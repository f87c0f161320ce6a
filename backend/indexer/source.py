"""Where the indexer reads our programs' transactions from, in execution order, after its cursor.

- :class:`EmbeddedSource`: the embedded chain's journal (backend/chain/persistent.py) — every executed
  transaction in order; one cursor ``embedded`` holding the last journal position applied.
- :class:`RpcSource`: a cluster over JSON-RPC. For each program of the deployment,
  ``getSignaturesForAddress(program, until=<its cursor>)`` (paged with ``before`` so nothing between is
  missed), merged by slot; within a slot, by the transaction's index in the block (``transactionIndex``
  when the node reports it, else ``getBlock``); then ``getTransaction`` for each. One cursor per program
  (``program:<id>``), moved in the same database transaction as the rows each transaction wrote. Only
  transactions at ``commitment`` (default ``finalized``) are read, so a fork cannot take back what was
  applied.

Both produce :class:`ChainTransaction` values: the message's top-level instructions, logs, error, slot,
block time, and the token balances before and after (RPC ``pre/postTokenBalances``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from backend.chain.persistent import JournalEntry, PersistentLiteSVMChain, TokenBalance
from backend.storage import Sql
from backend.storage import events as store
from programs.client.chain import ChainError

__all__ = ["ChainTransaction", "EmbeddedSource", "Instr", "RpcSource", "TransactionSource"]

_SLOT_SHIFT = 1 << 20  # position = slot * 2**20 + index in the block: one number orders the stream


@dataclass(frozen=True)
class Instr:
    program: Pubkey
    accounts: tuple[Pubkey, ...]
    data: bytes


@dataclass(frozen=True)
class ChainTransaction:
    signature: str
    slot: int
    position: int  # increasing in execution order within one source
    block_time: int | None
    instructions: tuple[Instr, ...]
    logs: tuple[str, ...]
    failed: bool
    pre_token_balances: tuple[TokenBalance, ...]
    post_token_balances: tuple[TokenBalance, ...]
    account_keys: tuple[Pubkey, ...] = ()

    @classmethod
    def from_message(cls, signature: str, slot: int, position: int, block_time: int | None,
                     transaction: VersionedTransaction, logs: Sequence[str], failed: bool,
                     pre: Sequence[TokenBalance], post: Sequence[TokenBalance]) -> ChainTransaction:
        message = transaction.message
        keys = tuple(message.account_keys)
        instructions = tuple(
            Instr(keys[ix.program_id_index], tuple(keys[i] for i in bytes(ix.accounts)), bytes(ix.data))
            for ix in message.instructions
        )
        return cls(signature, slot, position, block_time, instructions, tuple(logs), failed, tuple(pre), tuple(post),
                   keys)

    @classmethod
    def from_journal(cls, entry: JournalEntry) -> ChainTransaction:
        return cls.from_message(str(entry.signature), entry.slot, entry.position, entry.block_time,
                                entry.transaction, entry.logs, entry.err is not None, entry.pre_token_balances,
                                entry.post_token_balances)

    def touches(self, programs: Sequence[Pubkey]) -> bool:
        return any(key in programs for key in self.account_keys)


class TransactionSource(Protocol):
    """What the indexer reads. ``next_batch`` returns transactions not yet applied, in order (it may
    return some already applied: the indexer's apply-once gate skips them); ``advance`` moves the
    cursor past one, inside the database transaction that applied it; ``finish_batch`` moves it past
    whatever the batch scanned without returning (other programs' transactions)."""

    name: str

    async def next_batch(self, db: Sql) -> list[ChainTransaction]: ...

    async def advance(self, db: Sql, tx: ChainTransaction) -> None: ...

    async def finish_batch(self, db: Sql) -> None: ...

    async def chain_time(self) -> int | None: ...


class EmbeddedSource:
    name = "embedded"

    def __init__(self, chain: PersistentLiteSVMChain, programs: Sequence[Pubkey], *, page_size: int = 500) -> None:
        self.chain = chain
        self.programs = tuple(programs)
        self.page_size = page_size
        self._scanned = 0

    async def next_batch(self, db: Sql) -> list[ChainTransaction]:
        cursor = await store.get_cursor(db, self.name)
        start = cursor.position if cursor is not None else 0
        entries = self.chain.journal_after(start, self.page_size)
        self._scanned = entries[-1].position if entries else start
        txs = [ChainTransaction.from_journal(e) for e in entries]
        return [tx for tx in txs if tx.touches(self.programs)]

    async def advance(self, db: Sql, tx: ChainTransaction) -> None:
        await store.set_cursor(db, self.name, signature=tx.signature, slot=tx.slot, position=tx.position)

    async def finish_batch(self, db: Sql) -> None:
        cursor = await store.get_cursor(db, self.name)
        if cursor is None or cursor.position < self._scanned:
            entry = self.chain.journal_after(self._scanned - 1, 1)
            if entry:
                await store.set_cursor(db, self.name, signature=str(entry[0].signature), slot=entry[0].slot,
                                       position=self._scanned)

    async def chain_time(self) -> int | None:
        return self.chain.now()


@dataclass(frozen=True)
class _Seen:
    signature: str
    slot: int
    index: int | None
    programs: frozenset[Pubkey]


class RpcSource:
    """Our programs' transactions from a JSON-RPC node (solana-py ``AsyncClient``)."""

    name = "rpc"

    def __init__(self, client: Any, programs: Sequence[Pubkey], *, commitment: str = "finalized",
                 page_size: int = 500, concurrency: int = 8) -> None:
        from solana.rpc.commitment import Commitment

        self.client = client
        self.programs = tuple(programs)
        self.commitment = Commitment(commitment)
        self.page_size = page_size
        self.concurrency = concurrency
        self._pending: dict[str, frozenset[Pubkey]] = {}

    async def _call(self, what: str, coro: Any) -> Any:
        from solana.exceptions import SolanaRpcException
        from solana.rpc.core import RPCException

        try:
            return await coro
        except (SolanaRpcException, RPCException, OSError) as exc:
            raise ChainError(f"{what} failed: {exc}") from exc

    async def _signatures(self, program: Pubkey, until: str | None) -> list[Any]:
        """Every signature of ``program`` newer than ``until``, newest first (paged with ``before``)."""
        out: list[Any] = []
        before: Signature | None = None
        until_sig = Signature.from_string(until) if until else None
        while True:
            resp = await self._call(f"getSignaturesForAddress {program}", self.client.get_signatures_for_address(
                program, before=before, until=until_sig, limit=self.page_size, commitment=self.commitment))
            page = list(resp.value)
            out.extend(page)
            if len(page) < self.page_size:
                return out
            before = page[-1].signature

    async def next_batch(self, db: Sql) -> list[ChainTransaction]:
        seen: dict[str, _Seen] = {}
        for program in self.programs:
            cursor = await store.get_cursor(db, f"program:{program}")
            for status in await self._signatures(program, cursor.signature if cursor else None):
                sig = str(status.signature)
                prior = seen.get(sig)
                programs = frozenset({program}) | (prior.programs if prior else frozenset())
                index = getattr(status, "transaction_index", None)
                seen[sig] = _Seen(sig, int(status.slot), index, programs)
        ordered = await self._order(list(seen.values()))
        self._pending = {s.signature: s.programs for s, _ in ordered}
        gate = asyncio.Semaphore(self.concurrency)

        async def fetch(item: tuple[_Seen, int]) -> ChainTransaction | None:
            async with gate:
                return await self._transaction(item[0], item[1])

        fetched = await asyncio.gather(*(fetch(item) for item in ordered[: self.page_size]))
        return [tx for tx in fetched if tx is not None]

    async def _order(self, seen: list[_Seen]) -> list[tuple[_Seen, int]]:
        by_slot: dict[int, list[_Seen]] = {}
        for s in seen:
            by_slot.setdefault(s.slot, []).append(s)
        out: list[tuple[_Seen, int]] = []
        for slot in sorted(by_slot):
            group = by_slot[slot]
            if len(group) > 1 and any(s.index is None for s in group):
                from solders.transaction_status import TransactionDetails

                block = await self._call(f"getBlock {slot}", self.client.get_block(
                    slot, transaction_details=TransactionDetails.Signatures, max_supported_transaction_version=0))
                order = {str(sig): i for i, sig in enumerate(block.value.signatures or [])}
                group = [_Seen(s.signature, s.slot, order.get(s.signature, len(order)), s.programs) for s in group]
            group.sort(key=lambda s: (s.index if s.index is not None else 0, s.signature))
            out.extend((s, slot * _SLOT_SHIFT + (s.index or 0)) for s in group)
        return out

    async def _transaction(self, seen: _Seen, position: int) -> ChainTransaction | None:
        resp = await self._call(f"getTransaction {seen.signature}", self.client.get_transaction(
            Signature.from_string(seen.signature), encoding="base64", commitment=self.commitment,
            max_supported_transaction_version=0))
        found = resp.value
        if found is None:
            raise ChainError(f"transaction {seen.signature} was listed but cannot be fetched")
        meta = found.transaction.meta
        tx = found.transaction.transaction
        if not isinstance(tx, VersionedTransaction):
            raise ChainError(f"transaction {seen.signature} came back undecoded ({type(tx).__name__})")
        keys = list(tx.message.account_keys)

        def balances(items: Sequence[Any] | None) -> list[TokenBalance]:
            out = []
            for b in items or []:
                if b.owner is None or b.account_index >= len(keys):
                    continue
                out.append(TokenBalance(keys[b.account_index], b.mint, b.owner, int(b.ui_token_amount.amount)))
            return out

        failed = meta is not None and meta.err is not None
        return ChainTransaction.from_message(
            seen.signature, seen.slot, position, found.block_time, tx,
            list(meta.log_messages or []) if meta else [], failed,
            balances(meta.pre_token_balances if meta else None), balances(meta.post_token_balances if meta else None))

    async def advance(self, db: Sql, tx: ChainTransaction) -> None:
        for program in self._pending.get(tx.signature, frozenset()):
            await store.set_cursor(db, f"program:{program}", signature=tx.signature, slot=tx.slot,
                                   position=tx.position)

    async def finish_batch(self, db: Sql) -> None:
        return None

    async def chain_time(self) -> int | None:
        slot = await self._call("getSlot", self.client.get_slot(commitment=self.commitment))
        resp = await self._call("getBlockTime", self.client.get_block_time(slot.value))
        return None if resp.value is None else int(resp.value)
