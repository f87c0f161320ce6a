"""What the api reads, in SQL, over the backend's data stores (backend/storage/schema.py, version 2):
D1 ``users`` and ``meters``, D3 ``wallet_balances``, D4 ``orders``, D5 ``trades``, D6 ``certificates``,
D7 ``payments`` and the indexer's ``chain_events`` / ``event_wallets`` the live feed replays from.

The indexer writes all of them except the D1 profile, which registration writes once the chain has
confirmed the user account. Every list is keyset-paginated: ``after`` is the sort key of the last row of
the previous page, so a page never skips or repeats a row when rows are added meanwhile.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from backend.storage import events
from backend.storage.database import Storage

__all__ = ["ApiReads"]

USER = ("wallet_address AS wallet, name, user_type AS kind, pda_address AS pda, registered_at, created_ms",
        ["wallet", "name", "kind", "pda", "registered_at", "created_ms"])
METER = ("meter_id, owner_wallet AS owner, pda_address AS pda, status, registered_at, settled_seq, "
         "minted_base_units AS minted", ["meter_id", "owner", "pda", "status", "registered_at", "settled_seq",
                                         "minted"])
ORDER = ("address, seller, order_id, amount, remaining, price, fee_bps, proceeds, state, created_at, expires_at, "
         "created_signature", ["address", "seller", "order_id", "amount", "remaining", "price", "fee_bps",
                               "proceeds", "state", "created_at", "expires_at", "created_signature"])
# Trades and payments are listed in the order the indexer applied them: by their event's id.
_BY_EVENT = ("LEFT JOIN chain_events e ON e.signature = t.signature AND e.ix_index = t.ix_index "
             "AND e.event_index = t.event_index")
TRADE = ("COALESCE(e.id, 0), t.executed_at, t.signature, t.ix_index, t.event_index, t.order_address, t.seller, "
         "t.buyer, t.amount, t.price, t.cost, t.fee, t.remaining",
         ["id", "executed_at", "signature", "ix_index", "event_index", "order", "seller", "buyer", "amount",
          "price", "cost", "fee", "remaining"])
CERT = ("address, meter_id, holder, cert_index, from_wh, to_wh, status, revoke_reason, issued_at, expires_at, "
        "validated_at, closed_at", ["address", "meter_id", "holder", "index", "from_wh", "to_wh", "state",
                                    "revoke_reason", "issued_at", "expires_at", "validated_at", "closed_at"])
PAYMENT = ("COALESCE(e.id, 0), t.executed_at, t.signature, t.ix_index, t.event_index, t.kind, t.wallet, t.asset, "
           "t.amount, t.reference", ["id", "executed_at", "signature", "ix_index", "event_index", "kind", "wallet",
                                     "asset", "amount", "reference"])
OPEN = "state IN ('ACTIVE', 'PARTIALLY_FILLED')"


def _rows(shape: tuple[str, list[str]], rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    return [dict(zip(shape[1], r, strict=True)) for r in rows]


class _Where:
    """WHERE clauses with numbered placeholders, built up condition by condition."""

    def __init__(self) -> None:
        self.args: list[Any] = []
        self.parts: list[str] = []

    def arg(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def add(self, clause: str) -> None:
        self.parts.append(clause)

    def sql(self) -> str:
        return (" WHERE " + " AND ".join(self.parts)) if self.parts else ""


class ApiReads:
    def __init__(self, storage: Storage) -> None:
        self.s = storage

    # -- D1 users and meters --------------------------------------------------------------------------

    async def user(self, wallet: str) -> dict[str, Any] | None:
        rows = await self.s.fetch(f"SELECT {USER[0]} FROM users WHERE wallet_address = $1", wallet)
        found = _rows(USER, rows)
        return found[0] if found else None

    async def name_taken(self, name: str, wallet: str) -> bool:
        return bool(await self.s.fetch(
            "SELECT 1 FROM users WHERE lower(name) = lower($1) AND wallet_address <> $2", name, wallet))

    async def store_profile(self, wallet: str, name: str, kind: str, pda: str, signature: str) -> None:
        """D1 (design 1.6), once the chain confirmed the user account; the indexer may have been first."""
        now = int(time.time() * 1000)
        await self.s.execute(
            "INSERT INTO users (wallet_address, user_type, name, pda_address, registration_signature, created_ms, "
            "last_active_ms) VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (wallet_address) DO UPDATE SET "
            "name = excluded.name, pda_address = COALESCE(users.pda_address, excluded.pda_address), "
            "registration_signature = COALESCE(users.registration_signature, excluded.registration_signature)",
            wallet, kind, name, pda, signature, now)

    async def meter(self, meter_id: str) -> dict[str, Any] | None:
        found = _rows(METER, await self.s.fetch(f"SELECT {METER[0]} FROM meters WHERE meter_id = $1", meter_id))
        return found[0] if found else None

    async def meters(self, owner: str | None, limit: int, after: list[Any] | None) -> list[dict[str, Any]]:
        w = _Where()
        if owner is not None:
            w.add(f"owner_wallet = {w.arg(owner)}")
        if after:
            w.add(f"meter_id > {w.arg(str(after[0]))}")
        sql = f"SELECT {METER[0]} FROM meters{w.sql()} ORDER BY meter_id LIMIT {w.arg(limit)}"
        return _rows(METER, await self.s.fetch(sql, *w.args))

    # -- D3 balances ----------------------------------------------------------------------------------

    async def balances(self, wallet: str) -> dict[str, int]:
        rows = await self.s.fetch("SELECT asset, amount FROM wallet_balances WHERE wallet = $1", wallet)
        found = {str(r[0]): int(r[1]) for r in rows}
        escrow = await self.s.fetch(f"SELECT COALESCE(sum(remaining), 0) FROM orders WHERE seller = $1 AND {OPEN}",
                                    wallet)
        return {"grid": found.get("GRID", 0), "thbc": found.get("THBC", 0), "grid_in_escrow": int(escrow[0][0])}

    # -- D4 orders ------------------------------------------------------------------------------------

    async def order(self, address: str) -> dict[str, Any] | None:
        found = _rows(ORDER, await self.s.fetch(f"SELECT {ORDER[0]} FROM orders WHERE address = $1", address))
        return found[0] if found else None

    async def order_book(self, limit: int, after: list[Any] | None, *, min_price: int | None = None,
                         max_price: int | None = None, seller: str | None = None,
                         now: int | None = None) -> list[dict[str, Any]]:
        """Open, unexpired orders: lowest price first, then oldest (price-time priority)."""
        w = _Where()
        w.add(OPEN)
        w.add(f"expires_at > {w.arg(int(time.time()) if now is None else now)}")
        if min_price is not None:
            w.add(f"price >= {w.arg(min_price)}")
        if max_price is not None:
            w.add(f"price <= {w.arg(max_price)}")
        if seller is not None:
            w.add(f"seller = {w.arg(seller)}")
        if after:
            w.add(f"(price, created_at, address) > ({w.arg(int(after[0]))}, {w.arg(int(after[1]))}, "
                  f"{w.arg(str(after[2]))})")
        sql = f"SELECT {ORDER[0]} FROM orders{w.sql()} ORDER BY price, created_at, address LIMIT {w.arg(limit)}"
        return _rows(ORDER, await self.s.fetch(sql, *w.args))

    async def orders_of(self, seller: str, states: Sequence[str] | None, limit: int,
                        after: list[Any] | None) -> list[dict[str, Any]]:
        """A seller's orders, newest first."""
        w = _Where()
        w.add(f"seller = {w.arg(seller)}")
        if states:
            w.add("state IN (" + ", ".join(w.arg(s) for s in states) + ")")
        if after:
            w.add(f"(created_at, address) < ({w.arg(int(after[0]))}, {w.arg(str(after[1]))})")
        sql = (f"SELECT {ORDER[0]} FROM orders{w.sql()} ORDER BY created_at DESC, address DESC "
               f"LIMIT {w.arg(limit)}")
        return _rows(ORDER, await self.s.fetch(sql, *w.args))

    # -- D5 trades ------------------------------------------------------------------------------------

    async def trades(self, limit: int, after: list[Any] | None, *, wallet: str | None = None,
                     order: str | None = None) -> list[dict[str, Any]]:
        """Newest first."""
        w = _Where()
        if wallet is not None:
            mark = w.arg(wallet)
            w.add(f"(t.seller = {mark} OR t.buyer = {mark})")
        if order is not None:
            w.add(f"t.order_address = {w.arg(order)}")
        if after:
            w.add(f"COALESCE(e.id, 0) < {w.arg(int(after[0]))}")
        sql = (f"SELECT {TRADE[0]} FROM trades t {_BY_EVENT}{w.sql()} "
               f"ORDER BY COALESCE(e.id, 0) DESC, t.executed_at DESC LIMIT {w.arg(limit)}")
        return _rows(TRADE, await self.s.fetch(sql, *w.args))

    # -- D6 certificates ------------------------------------------------------------------------------

    async def certificate(self, address: str) -> dict[str, Any] | None:
        found = _rows(CERT, await self.s.fetch(f"SELECT {CERT[0]} FROM certificates WHERE address = $1", address))
        if not found:
            return None
        cert = found[0]
        history = await self.s.fetch(
            "SELECT kind, block_time, signature, payload FROM chain_events WHERE subject = $1 AND program = "
            "'certificates' ORDER BY id", address)
        cert["history"] = [{"event": r[0], "at": r[1], "signature": r[2], "data": json.loads(r[3])} for r in history]
        return cert

    async def certificate_count(self, meter_id: str) -> int:
        return int((await self.s.fetch("SELECT count(*) FROM certificates WHERE meter_id = $1", meter_id))[0][0])

    async def certificates(self, limit: int, after: list[Any] | None, *, holder: str | None = None,
                           meter_id: str | None = None, state: str | None = None) -> list[dict[str, Any]]:
        w = _Where()
        for value, column in ((holder, "holder"), (meter_id, "meter_id"), (state, "status")):
            if value is not None:
                w.add(f"{column} = {w.arg(value)}")
        if after:
            w.add(f"(issued_at, address) < ({w.arg(int(after[0]))}, {w.arg(str(after[1]))})")
        sql = (f"SELECT {CERT[0]} FROM certificates{w.sql()} ORDER BY issued_at DESC, address DESC "
               f"LIMIT {w.arg(limit)}")
        return _rows(CERT, await self.s.fetch(sql, *w.args))

    # -- D7 payments ----------------------------------------------------------------------------------

    async def payments(self, limit: int, after: list[Any] | None, *,
                       wallet: str | None = None) -> list[dict[str, Any]]:
        w = _Where()
        if wallet is not None:
            w.add(f"t.wallet = {w.arg(wallet)}")
        if after:
            w.add(f"COALESCE(e.id, 0) < {w.arg(int(after[0]))}")
        sql = (f"SELECT {PAYMENT[0]} FROM payments t {_BY_EVENT}{w.sql()} "
               f"ORDER BY COALESCE(e.id, 0) DESC, t.executed_at DESC LIMIT {w.arg(limit)}")
        return _rows(PAYMENT, await self.s.fetch(sql, *w.args))

    async def reference_used(self, reference: str) -> bool:
        return bool(await self.s.fetch("SELECT 1 FROM payments WHERE kind = 'ISSUE' AND reference = $1", reference))

    # -- the event log (what /ws replays) -------------------------------------------------------------

    async def events_after(self, after_id: int, limit: int, *, wallet: str | None = None,
                           meter_id: str | None = None) -> list[dict[str, Any]]:
        found = await events.events_after(self.s, after_id, limit=limit, wallet=wallet, meter_id=meter_id)
        return [e.to_json() for e in found]

    async def last_event_id(self) -> int:
        return await events.last_event_id(self.s)
