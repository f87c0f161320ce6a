"""Reading an embedded chain's state file (``<data_dir>/chain/chain.db``) instead of a JSON-RPC endpoint.

The backend's embedded chain (``[chain] url = "embedded"``) keeps LiteSVM's state in one SQLite file; the
audit reads it read-only, with the standard library, as it would read a cluster. Two tables (docs/audit.md):

- ``accounts``: ``pubkey`` (32 bytes), ``lamports``, ``data``, ``owner`` (32 bytes) — every account a
  transaction could have written, as it stands now;
- ``journal``: one row per executed transaction in execution order — ``position``, ``signature`` (base58),
  ``slot``, ``tx`` (the transaction's wire bytes), ``logs`` (a JSON array of the log lines), ``err`` (NULL
  when it succeeded). A row whose signature is not its transaction's own (the all-zero placeholder an
  older backend wrote for a transaction refused before it ran) is not a transaction and is skipped.

The file may be open in the backend at the same time: the audit reads it in ONE SQLite read transaction
(WAL lets a reader keep the snapshot it started with), so accounts and journal describe the same moment;
the slot it reports for that moment is past the last journaled transaction.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path
from typing import Any

from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from audit.source import AccountRecord, ChainReadError, ChainTransaction, Instruction, SignatureInfo

__all__ = ["StateFileSource"]

_PLACEHOLDER = str(Signature.default())


def _ran(tx: VersionedTransaction, signature: str) -> bool:
    """A row is an executed transaction only under the transaction's own first signature. Older backends
    journaled transactions refused before they ran (a fee payer without SOL …) under LiteSVM's all-zero
    placeholder signature: nothing happened on chain, so the audit does not count them."""
    return bool(tx.signatures) and signature == str(tx.signatures[0]) and signature != _PLACEHOLDER


class StateFileSource:
    """The chain in ``path`` (the chain directory, or its chain.db)."""

    def __init__(self, path: Path) -> None:
        database = path / "chain.db" if path.is_dir() else path
        if not database.exists():
            raise ChainReadError(f"{path}: no embedded chain state (chain.db) there")
        self.description = str(database)
        try:
            self._db = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None,
                                       check_same_thread=False)  # read only, used by one thread at a time
            self._db.execute("BEGIN")  # one read snapshot for everything the audit reads (never committed)
            self._db.execute("SELECT count(*) FROM journal").fetchone()
        except sqlite3.Error as exc:
            raise ChainReadError(f"{database}: not an embedded chain state: {exc}") from exc
        self._transactions: dict[str, ChainTransaction] = {}
        self._by_address: dict[Pubkey, list[SignatureInfo]] = {}
        self._position = 0
        self._slot_index: dict[int, int] = {}

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()

    def _query(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        try:
            return [tuple(r) for r in self._db.execute(sql, args).fetchall()]
        except sqlite3.Error as exc:
            raise ChainReadError(f"{self.description}: {exc}") from exc

    def _load(self) -> None:
        """Read the journal entries written since the last call (the file may still be growing)."""
        for position, signature, slot, raw, logs, err in self._query(
                "SELECT position, signature, slot, tx, logs, err FROM journal WHERE position > ? ORDER BY position",
                self._position):
            tx = VersionedTransaction.from_bytes(raw)
            self._position = position
            if not _ran(tx, str(signature)):
                continue
            keys = list(tx.message.account_keys)
            instructions = tuple(
                Instruction(keys[ix.program_id_index], bytes(ix.data), tuple(keys[i] for i in bytes(ix.accounts)))
                for ix in tx.message.instructions)
            failed = err is not None
            self._transactions[str(signature)] = ChainTransaction(str(signature), slot, instructions,
                                                                  tuple(json.loads(str(logs))), failed)
            index = self._slot_index.get(slot, 0)
            self._slot_index[slot] = index + 1
            info = SignatureInfo(str(signature), slot, index, failed)
            for key in dict.fromkeys(keys):
                self._by_address.setdefault(key, []).append(info)

    def signatures(self, address: Pubkey) -> list[SignatureInfo]:
        self._load()
        return list(reversed(self._by_address.get(address, [])))

    def transaction(self, signature: str) -> ChainTransaction | None:
        self._load()
        return self._transactions.get(signature)

    def _slot(self) -> int:
        """The snapshot's moment: after every transaction in the journal (one read transaction: nothing
        lands while the audit reads)."""
        rows = self._query("SELECT max(slot) FROM journal")
        return int(rows[0][0] or 0) + 1

    def program_accounts(self, program: Pubkey) -> tuple[int, list[AccountRecord]]:
        slot = self._slot()
        rows = self._query("SELECT pubkey, lamports, data FROM accounts WHERE owner = ? AND lamports > 0",
                           bytes(program))
        return slot, [AccountRecord(Pubkey.from_bytes(bytes(k)), program, int(n), bytes(d)) for k, n, d in rows]

    def accounts(self, addresses: list[Pubkey]) -> tuple[int, list[AccountRecord | None]]:
        slot = self._slot()
        out: list[AccountRecord | None] = []
        for address in addresses:
            rows = self._query("SELECT lamports, data, owner FROM accounts WHERE pubkey = ? AND lamports > 0",
                               bytes(address))
            if not rows:
                out.append(None)
                continue
            lamports, data, owner = rows[0]
            out.append(AccountRecord(address, Pubkey.from_bytes(bytes(owner)), int(lamports), bytes(data)))
        return slot, out
