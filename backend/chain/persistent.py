"""LiteSVM whose state survives a restart, with a journal of every transaction it executed.

solders' LiteSVM keeps everything in memory and has no save/load. This chain wraps it and records, in one
SQLite file (``<directory>/chain.db``), after every transaction and in the same SQLite transaction:

- the accounts the transaction could have changed (its writable keys, the fee payer included: a failed
  transaction still pays its fee) — the **snapshot**: at start-up a fresh LiteSVM gets every saved account
  back, and every program owned by the upgradeable loader is loaded again from the ELF its saved
  ProgramData holds (so the code that ran before the restart runs after it);
- the transaction itself, its logs, error, fee, slot, time and the token balances of its token accounts
  before and after — the **journal**, the chain's own record of executed transactions that the indexer
  reads (embedded mode) and that the JSON-RPC localnet serves (getTransaction, getSignaturesForAddress);
- the clock (slot, unix time).

A transaction refused before it ran (fee payer without SOL, unknown blockhash, a message that does not
sanitize, a replay) changed nothing and is not journaled: a cluster does not record it either. LiteSVM
reports it under an all-zero placeholder signature; the caller gets the error under the transaction's own
signature with ``executed=False`` (programs.client.chain.TxResult). A chain.db written before this rule
may hold such a row (under the placeholder): it is dropped when the chain is opened, and journal positions
are never reused (``meta.last_position``), so an indexer's cursor stays meaningful.

The chain's unix time follows the wall clock (never backwards), plus ``time_offset`` which tests move
forward to reach expiries. In stand-alone mode every transaction gets the next slot; under a JSON-RPC server
slots advance on the server's timer instead (``slot_per_transaction=False``).

One process at a time: the directory is locked (``flock``) while open. ``directory=None`` keeps the journal
in memory only (tests, benches).
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import json
import logging
import sqlite3
import struct
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from solders.account import Account
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import Transaction, VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata, TransactionMetadata
from spl.token.constants import TOKEN_PROGRAM_ID

from programs.client.chain import ChainError, LiteSVMChain, TxResult, litesvm_executed
from programs.client.deploy import BPF_LOADER_UPGRADEABLE_ID, PROGRAMDATA_METADATA_LEN
from programs.client.errors import TransactionFailure, parse_transaction_error

__all__ = ["ChainStateError", "JournalEntry", "PersistentLiteSVMChain", "TokenBalance", "writable_keys"]

log = logging.getLogger(__name__)

TOKEN_ACCOUNT_LEN = 165
_SYSVAR_OWNER = Pubkey.from_string("Sysvar1111111111111111111111111111111111111")
_LOADER_PROGRAM_VARIANT = 2  # UpgradeableLoaderState::Program { programdata_address }

_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS accounts (pubkey BLOB PRIMARY KEY, lamports INTEGER NOT NULL, data BLOB NOT NULL, "
    "owner BLOB NOT NULL, executable INTEGER NOT NULL, rent_epoch TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS journal (position INTEGER PRIMARY KEY, signature TEXT NOT NULL UNIQUE, "
    "slot INTEGER NOT NULL, block_time INTEGER NOT NULL, tx BLOB NOT NULL, logs TEXT NOT NULL, err TEXT, "
    "compute_units INTEGER NOT NULL, fee INTEGER NOT NULL, pre_balances TEXT NOT NULL, post_balances TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS journal_slot ON journal (slot, position)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
]


class ChainStateError(ChainError):
    """The saved chain state cannot be used (locked by another process, unreadable, or corrupt)."""


@dataclass(frozen=True)
class TokenBalance:
    """An SPL token account's balance at one point: as RPC's pre/postTokenBalances report it."""

    account: Pubkey
    mint: Pubkey
    owner: Pubkey
    amount: int

    def to_json(self) -> list[str | int]:
        return [str(self.account), str(self.mint), str(self.owner), self.amount]

    @classmethod
    def from_json(cls, item: Sequence[Any]) -> TokenBalance:
        return cls(Pubkey.from_string(item[0]), Pubkey.from_string(item[1]), Pubkey.from_string(item[2]),
                   int(item[3]))


@dataclass(frozen=True)
class JournalEntry:
    """One executed transaction (``position``: its place in execution order, from 1)."""

    position: int
    signature: Signature
    slot: int
    block_time: int
    transaction: VersionedTransaction
    logs: tuple[str, ...]
    err: Any  # the solders TransactionError, or None
    compute_units: int
    fee: int
    pre_token_balances: tuple[TokenBalance, ...]
    post_token_balances: tuple[TokenBalance, ...]

    @property
    def failure(self) -> TransactionFailure | None:
        return None if self.err is None else parse_transaction_error(self.err)

    @property
    def ran(self) -> bool:
        """Recorded under the transaction's own signature: it executed. A row under any other (LiteSVM's
        placeholder, written before pre-execution failures were kept out) is of one that never ran."""
        return _ran(self.transaction, self.signature)


def _ran(transaction: VersionedTransaction, signature: Signature) -> bool:
    signatures = transaction.signatures
    return bool(signatures) and signature == signatures[0] and signature != Signature.default()


def writable_keys(message: Any) -> list[Pubkey]:
    """The keys a legacy or v0 message may write (from its header; lookup tables are not used here)."""
    keys = list(message.account_keys)
    header = message.header
    signed = header.num_required_signatures
    out = []
    for i, key in enumerate(keys):
        if i < signed:
            writable = i < signed - header.num_readonly_signed_accounts
        else:
            writable = i < len(keys) - header.num_readonly_unsigned_accounts
        if writable:
            out.append(key)
    return out


def _token_balance(key: Pubkey, account: Account | None) -> TokenBalance | None:
    if account is None or account.owner != TOKEN_PROGRAM_ID or len(account.data) != TOKEN_ACCOUNT_LEN:
        return None
    data = bytes(account.data)
    (amount,) = struct.unpack_from("<Q", data, 64)
    return TokenBalance(key, Pubkey.from_bytes(data[0:32]), Pubkey.from_bytes(data[32:64]), amount)


class PersistentLiteSVMChain(LiteSVMChain):
    """A :class:`LiteSVMChain` that keeps its state in ``directory`` (see the module docstring)."""

    def __init__(self, directory: Path | None = None, *, blockhash_check: bool = True,
                 slot_per_transaction: bool = True) -> None:
        svm = LiteSVM() if blockhash_check else LiteSVM().with_blockhash_check(False)
        super().__init__(svm)
        self.blockhash_check = blockhash_check
        self.directory = directory
        self.slot_per_transaction = slot_per_transaction
        self.time_offset = 0
        self._journal: list[JournalEntry] = []  # in memory: the whole journal (it is also in chain.db)
        self._positions: list[int] = []  # each entry's position (increasing; gaps where rows were dropped)
        self._last_position = 0
        self._by_signature: dict[Signature, JournalEntry] = {}
        self._by_address: dict[Pubkey, list[JournalEntry]] = {}
        self._by_slot: dict[int, list[JournalEntry]] = {}
        self._db: sqlite3.Connection | None = None
        self._lock: IO[str] | None = None
        if directory is not None:
            self._open(directory)
        else:
            self._set_time(int(time.time()))

    # -- state on disk -------------------------------------------------------------------------

    def _open(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        lock = open(directory / "lock", "a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise ChainStateError(f"the embedded chain in {directory} is open in another process "
                                  "(one process per chain state: run the others with --chain URL)") from None
        self._lock = lock
        try:
            self._db = sqlite3.connect(directory / "chain.db", isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            for statement in _SCHEMA:
                self._db.execute(statement)
            self._restore()
        except (sqlite3.Error, ValueError, KeyError) as exc:
            self.close()
            raise ChainStateError(f"cannot load the embedded chain state in {directory}: {exc}") from exc

    def _restore(self) -> None:
        assert self._db is not None
        rows = self._db.execute("SELECT pubkey, lamports, data, owner, executable, rent_epoch FROM accounts").fetchall()
        accounts = {Pubkey.from_bytes(r[0]): Account(r[1], r[2], Pubkey.from_bytes(r[3]), bool(r[4]), int(r[5]))
                    for r in rows}
        # Programs first, from the ELF in their ProgramData; then every other account as it was saved.
        programdata: set[Pubkey] = set()
        for key, account in accounts.items():
            data = bytes(account.data)
            if account.owner == BPF_LOADER_UPGRADEABLE_ID and len(data) >= 36 and data[0] == _LOADER_PROGRAM_VARIANT:
                pd_key = Pubkey.from_bytes(data[4:36])
                pd = accounts.get(pd_key)
                if pd is None:
                    raise ValueError(f"program {key} has no saved ProgramData {pd_key}")
                self.svm.add_program(key, bytes(pd.data)[PROGRAMDATA_METADATA_LEN:])
                programdata.add(pd_key)
        for key, account in accounts.items():
            if not (account.owner == BPF_LOADER_UPGRADEABLE_ID and bytes(account.data)[:1] == b"\x02"):
                self.svm.set_account(key, account)
        meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        if "slot" in meta:
            self.svm.warp_to_slot(int(meta["slot"]))
        self.time_offset = int(meta.get("time_offset", 0))
        self._set_time(max(int(meta.get("unix_timestamp", 0)), int(time.time()) + self.time_offset))
        self._last_position = int(meta.get("last_position", 0))
        never_ran = []
        for r in self._db.execute("SELECT position, signature, slot, block_time, tx, logs, err, compute_units, fee, "
                                  "pre_balances, post_balances FROM journal ORDER BY position"):
            entry = JournalEntry(
                r[0], Signature.from_string(r[1]), r[2], r[3], VersionedTransaction.from_bytes(r[4]),
                tuple(json.loads(r[5])), None if r[6] is None else _error_from_json(r[6]), r[7], r[8],
                tuple(TokenBalance.from_json(b) for b in json.loads(r[9])),
                tuple(TokenBalance.from_json(b) for b in json.loads(r[10])),
            )
            self._last_position = max(self._last_position, entry.position)
            if entry.ran:
                self._index_entry(entry)
            else:
                never_ran.append(entry.position)
        if never_ran:
            # Written by a version that journaled transactions refused before they ran: they changed nothing.
            log.warning("embedded chain: dropping %d journal rows of transactions that never ran (positions %s)",
                        len(never_ran), never_ran)
            with self._saving() as db:
                assert db is not None
                db.executemany("DELETE FROM journal WHERE position = ?", [(p,) for p in never_ran])
                db.execute("INSERT OR REPLACE INTO meta VALUES ('last_position', ?)", (str(self._last_position),))

    def _index_entry(self, entry: JournalEntry) -> None:
        self._journal.append(entry)
        self._positions.append(entry.position)
        self._last_position = max(self._last_position, entry.position)
        self._by_signature[entry.signature] = entry
        self._by_slot.setdefault(entry.slot, []).append(entry)
        for key in dict.fromkeys(entry.transaction.message.account_keys):
            self._by_address.setdefault(key, []).append(entry)

    @contextlib.contextmanager
    def _saving(self) -> Iterator[sqlite3.Connection | None]:
        if self._db is None:
            yield None
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _save_accounts(self, db: sqlite3.Connection, keys: Sequence[Pubkey]) -> None:
        rows = []
        for key in dict.fromkeys(keys):
            account = self.svm.get_account(key)
            if account is None:  # closed by the transaction: a restart must not bring it back
                db.execute("DELETE FROM accounts WHERE pubkey = ?", (bytes(key),))
                continue
            if account.owner == _SYSVAR_OWNER:
                continue
            if account.executable and account.owner != BPF_LOADER_UPGRADEABLE_ID:
                continue  # built-in programs come with every LiteSVM
            rows.append((bytes(key), account.lamports, bytes(account.data), bytes(account.owner),
                         int(account.executable), str(account.rent_epoch)))
        db.executemany("INSERT OR REPLACE INTO accounts VALUES (?, ?, ?, ?, ?, ?)", rows)

    def _save_clock(self, db: sqlite3.Connection) -> None:
        clock = self.svm.get_clock()
        db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [
            ("slot", str(clock.slot)), ("unix_timestamp", str(clock.unix_timestamp)),
            ("time_offset", str(self.time_offset)),
        ])

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- meta values (the deployment, keys' addresses …) -------------------------------------------

    def get_meta(self, key: str) -> str | None:
        if self._db is None:
            return None
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._saving() as db:
            if db is not None:
                db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # -- time --------------------------------------------------------------------------------------

    def _set_time(self, unix_timestamp: int) -> None:
        clock = self.svm.get_clock()
        clock.unix_timestamp = unix_timestamp
        self.svm.set_clock(clock)

    def now(self) -> int:
        """The chain's unix time (the Clock sysvar's)."""
        return int(self.svm.get_clock().unix_timestamp)

    def advance_time(self, seconds: int) -> None:
        """Move the chain's clock forward (tests: reach an expiry without waiting)."""
        self.time_offset += seconds
        self._tick(advance_slot=False)
        with self._saving() as db:
            if db is not None:
                self._save_clock(db)

    def _tick(self, *, advance_slot: bool) -> None:
        clock = self.svm.get_clock()
        if advance_slot:
            self.svm.warp_to_slot(clock.slot + 1)
        self._set_time(max(int(clock.unix_timestamp), int(time.time()) + self.time_offset))

    def next_slot(self) -> None:
        """A new slot (the JSON-RPC server's timer calls this)."""
        self._tick(advance_slot=True)

    # -- executing ---------------------------------------------------------------------------------

    def execute(self, tx: Transaction | VersionedTransaction) -> TransactionMetadata | FailedTransactionMetadata:
        """Run one signed transaction; journal it and save what it changed before returning."""
        self._tick(advance_slot=self.slot_per_transaction)
        message = tx.message
        keys = list(message.account_keys)
        pre = [b for b in (_token_balance(k, self.svm.get_account(k)) for k in keys) if b is not None]
        outcome = self.svm.send_transaction(tx)
        # A new blockhash per transaction, as on a cluster: the same instructions again are a new transaction.
        self.svm.expire_blockhash()
        if not litesvm_executed(tx, outcome):
            return outcome  # refused before it ran: nothing changed, nothing to journal (module docstring)
        if isinstance(outcome, FailedTransactionMetadata):
            meta, err = outcome.meta(), outcome.err()
        else:
            meta, err = outcome, None
        post = [b for b in (_token_balance(k, self.svm.get_account(k)) for k in keys) if b is not None]
        clock = self.svm.get_clock()
        versioned = tx if isinstance(tx, VersionedTransaction) else VersionedTransaction.from_legacy(tx)
        entry = JournalEntry(self._last_position + 1, meta.signature(), int(clock.slot), int(clock.unix_timestamp),
                             versioned, tuple(meta.logs()), err, meta.compute_units_consumed(), meta.fee(),
                             tuple(pre), tuple(post))
        with self._saving() as db:
            if db is not None:
                self._save_accounts(db, writable_keys(message))
                self._save_clock(db)
                db.execute(
                    "INSERT INTO journal VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (entry.position, str(entry.signature), entry.slot, entry.block_time, bytes(versioned),
                     json.dumps(list(entry.logs)), None if err is None else _error_to_json(err),
                     entry.compute_units, entry.fee, json.dumps([b.to_json() for b in pre]),
                     json.dumps([b.to_json() for b in post])),
                )
        self._index_entry(entry)
        return outcome

    async def send_transaction(self, instructions: Sequence[Instruction], signers: Sequence[Keypair]) -> TxResult:
        if not signers:
            raise ValueError("a transaction needs at least one signer (the first pays the fee)")
        tx = Transaction(list(signers), Message(list(instructions), signers[0].pubkey()), self.svm.latest_blockhash())
        return _result(tx, self.execute(tx), tuple(ix.program_id for ix in instructions))

    async def send_signed_transaction(self, tx: Transaction) -> TxResult:
        """A transaction a wallet signed with a recent blockhash (one :meth:`latest_blockhash` handed out)."""
        blockhash = tx.message.recent_blockhash
        keys = tx.message.account_keys
        programs = tuple(keys[ix.program_id_index] for ix in tx.message.instructions)
        if blockhash != self.svm.latest_blockhash() and blockhash not in self._recent:
            return TxResult(tx.signatures[0], (), 0, TransactionFailure("BlockhashNotFound"), programs, executed=False)
        self.svm.with_blockhash_check(False)
        try:
            outcome = self.execute(tx)
        finally:
            self.svm.with_blockhash_check(self.blockhash_check)
        self._remember(self.svm.latest_blockhash())
        return _result(tx, outcome, programs)

    async def fund(self, pubkey: Pubkey, lamports: int) -> None:
        outcome = self.svm.airdrop(pubkey, lamports)
        self.svm.expire_blockhash()  # an airdrop is a transaction: the next identical one must differ
        if isinstance(outcome, FailedTransactionMetadata):
            raise ChainError(f"airdrop of {lamports} lamports to {pubkey} failed: {outcome.err()}")
        with self._saving() as db:
            if db is not None:
                self._save_accounts(db, [pubkey])

    def add_program(self, program_id: Pubkey, so: bytes) -> None:
        self.svm.add_program(program_id, so)
        self._save_program(program_id)

    def set_account(self, pubkey: Pubkey, account: Account) -> None:
        """Replace an account (kept across restarts, unlike ``svm.set_account``)."""
        self.svm.set_account(pubkey, account)
        with self._saving() as db:
            if db is not None:
                self._save_accounts(db, [pubkey])

    def _save_program(self, program_id: Pubkey) -> None:
        from programs.client.deploy import programdata_address

        with self._saving() as db:
            if db is not None:
                self._save_accounts(db, [program_id, programdata_address(program_id)])

    def save_program(self, program_id: Pubkey) -> None:
        """Save a program's accounts after changing them outside a transaction (an upgrade authority set
        with ``add_program_with_authority``)."""
        self._save_program(program_id)

    # -- the journal ---------------------------------------------------------------------------------

    @property
    def journal_length(self) -> int:
        """How many executed transactions the journal holds."""
        return len(self._journal)

    @property
    def journal_position(self) -> int:
        """The last position handed out (0: none yet); an indexer whose cursor is here has seen everything."""
        return self._last_position

    def journal_after(self, position: int, limit: int = 500) -> list[JournalEntry]:
        """Executed transactions after ``position``, in execution order."""
        start = bisect.bisect_right(self._positions, position)
        return self._journal[start: start + limit]

    def journal_entry(self, signature: Signature) -> JournalEntry | None:
        return self._by_signature.get(signature)

    def journal_for_address(self, address: Pubkey) -> Iterator[JournalEntry]:
        """Transactions that name ``address`` among their accounts, newest first."""
        yield from reversed(self._by_address.get(address, []))

    def journal_in_slot(self, slot: int) -> list[JournalEntry]:
        """Transactions executed in ``slot``, in execution order."""
        return list(self._by_slot.get(slot, []))


def _result(tx: Transaction, outcome: TransactionMetadata | FailedTransactionMetadata,
            programs: tuple[Pubkey, ...]) -> TxResult:
    """The outcome under the transaction's own signature (never LiteSVM's placeholder)."""
    if isinstance(outcome, FailedTransactionMetadata):
        meta = outcome.meta()
        failure: TransactionFailure | None = parse_transaction_error(outcome.err())
    else:
        meta, failure = outcome, None
    return TxResult(tx.signatures[0], tuple(meta.logs()), meta.compute_units_consumed(), failure, programs,
                    executed=litesvm_executed(tx, outcome))


def _error_to_json(err: Any) -> str:
    from solders.transaction_status import TransactionErrorFieldless

    if isinstance(err, TransactionErrorFieldless):
        return json.dumps({"fieldless": str(err).rsplit(".", 1)[-1]})
    return json.dumps({"type": type(err).__name__, "json": err.to_json()})


def _error_from_json(text: str) -> Any:
    import solders.transaction_status as ts

    data = json.loads(text)
    if "fieldless" in data:
        return getattr(ts.TransactionErrorFieldless, data["fieldless"])
    return getattr(ts, data["type"]).from_json(data["json"])
