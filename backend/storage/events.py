"""The indexer's own records: what it applied, the events themselves, and where it is in the chain.

- ``chain_transactions``: one row per transaction applied (signature primary key) — the apply-once gate.
  Inserted first in the database transaction that applies it; a second indexer finds the row and skips.
- ``chain_events``: every applied event, keyed by (signature, instruction index, event index), with a
  global ``id`` in apply order (what the live feed and ``/ws`` resume from), the program and event kind,
  its ``subject`` (the order, certificate or meter account it is about), ``meter_id`` when it has one,
  and the decoded fields as JSON ``payload``.
- ``event_wallets``: (wallet, event id) for every wallet an event concerns, so a wallet's feed is an index
  range scan.
- ``chain_cursor``: per stream (``embedded``, or one per program address over RPC) the last transaction
  applied: signature, slot and position, advanced in the same database transaction as its rows.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from backend.storage.sql import Sql, now_ms, placeholders

__all__ = [
    "Cursor",
    "EventRecord",
    "claim_transaction",
    "event_counts",
    "events_after",
    "get_cursor",
    "insert_event",
    "last_event_id",
    "set_cursor",
    "transaction_applied",
]


@dataclass(frozen=True)
class Cursor:
    name: str
    signature: str | None
    slot: int
    position: int
    updated_ms: int


@dataclass(frozen=True)
class EventRecord:
    id: int
    signature: str
    ix_index: int
    event_index: int
    slot: int
    block_time: int | None
    program: str
    kind: str
    version: int
    subject: str | None
    meter_id: str | None
    payload: dict[str, Any]
    wallets: tuple[str, ...] | None = None  # known when the event was just recorded (None when read back)

    def to_json(self) -> dict[str, Any]:
        """The feed's and the API's form of an event (``wallets`` lets a subscriber filter without a query)."""
        out = {
            "id": self.id, "signature": self.signature, "ix_index": self.ix_index, "event_index": self.event_index,
            "slot": self.slot, "block_time": self.block_time, "program": self.program, "kind": self.kind,
            "version": self.version, "subject": self.subject, "meter_id": self.meter_id, "data": self.payload,
        }
        if self.wallets is not None:
            out["wallets"] = list(self.wallets)
        return out


_COLUMNS = ("id, signature, ix_index, event_index, slot, block_time, program, kind, version, subject, meter_id, "
            "payload")


def _event(r: Sequence[Any]) -> EventRecord:
    return EventRecord(int(r[0]), r[1], int(r[2]), int(r[3]), int(r[4]), r[5], r[6], r[7], int(r[8]), r[9], r[10],
                       json.loads(r[11]))


async def claim_transaction(db: Sql, signature: str, *, slot: int, position: int, block_time: int | None,
                            events: int) -> bool:
    """The apply-once gate: True if this transaction was not applied before (and is now being applied in
    this database transaction). On PostgreSQL a concurrent claimer waits for this one to commit or roll back."""
    rows = await db.fetch(
        "INSERT INTO chain_transactions (signature, slot, position, block_time, events, applied_ms) "
        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (signature) DO NOTHING RETURNING signature",
        signature, slot, position, block_time, events, now_ms(),
    )
    return bool(rows)


async def transaction_applied(db: Sql, signature: str) -> bool:
    return bool(await db.fetch("SELECT 1 FROM chain_transactions WHERE signature = $1", signature))


async def insert_event(db: Sql, *, signature: str, ix_index: int, event_index: int, slot: int,
                       block_time: int | None, program: str, kind: str, version: int, subject: str | None,
                       meter_id: str | None, payload: dict[str, Any], wallets: Sequence[str]) -> EventRecord | None:
    """Record one event (None if this (signature, instruction, event) is already recorded)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    rows = await db.fetch(
        "INSERT INTO chain_events (signature, ix_index, event_index, slot, block_time, program, kind, version, "
        "subject, meter_id, payload, applied_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) "
        f"ON CONFLICT (signature, ix_index, event_index) DO NOTHING RETURNING {_COLUMNS}",
        signature, ix_index, event_index, slot, block_time, program, kind, version, subject, meter_id, text,
        now_ms(),
    )
    if not rows:
        return None
    unique = sorted(set(wallets))
    record = dataclasses.replace(_event(rows[0]), wallets=tuple(unique))
    if unique:
        await db.executemany(
            "INSERT INTO event_wallets (wallet, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            [(w, record.id) for w in unique],
        )
    return record


async def events_after(db: Sql, after_id: int = 0, *, limit: int = 500, wallet: str | None = None,
                       meter_id: str | None = None, subject: str | None = None,
                       kinds: Sequence[str] | None = None) -> list[EventRecord]:
    """Events with id > ``after_id`` in id order, optionally only one wallet's, meter's or account's; the
    way a reconnecting client resumes without a gap."""
    args: list[Any] = [after_id, limit]
    where = ["e.id > $1"]
    source = "chain_events e"
    if wallet is not None:
        args.append(wallet)
        source = "event_wallets w JOIN chain_events e ON e.id = w.event_id"
        where.append(f"w.wallet = ${len(args)}")
    if meter_id is not None:
        args.append(meter_id)
        where.append(f"e.meter_id = ${len(args)}")
    if subject is not None:
        args.append(subject)
        where.append(f"e.subject = ${len(args)}")
    if kinds:
        where.append(f"e.kind IN ({placeholders(args, kinds)})")
    columns = ", ".join(f"e.{c}" for c in _COLUMNS.split(", "))
    rows = await db.fetch(
        f"SELECT {columns} FROM {source} WHERE {' AND '.join(where)} ORDER BY e.id LIMIT $2", *args
    )
    return [_event(r) for r in rows]


async def last_event_id(db: Sql) -> int:
    return int((await db.fetch("SELECT COALESCE(max(id), 0) FROM chain_events"))[0][0])


async def event_counts(db: Sql) -> dict[str, int]:
    return {r[0]: int(r[1]) for r in await db.fetch("SELECT kind, count(*) FROM chain_events GROUP BY kind")}


async def get_cursor(db: Sql, name: str) -> Cursor | None:
    rows = await db.fetch("SELECT name, signature, slot, position, updated_ms FROM chain_cursor WHERE name = $1", name)
    return Cursor(*rows[0]) if rows else None


async def set_cursor(db: Sql, name: str, *, signature: str | None, slot: int, position: int) -> None:
    """Move the cursor forward (never back: a slower second indexer cannot rewind it)."""
    await db.execute(
        "INSERT INTO chain_cursor (name, signature, slot, position, updated_ms) VALUES ($1, $2, $3, $4, $5) "
        "ON CONFLICT (name) DO UPDATE SET signature = excluded.signature, slot = excluded.slot, "
        "position = excluded.position, updated_ms = excluded.updated_ms "
        "WHERE chain_cursor.position < excluded.position",
        name, signature, slot, position, now_ms(),
    )
