"""What one transaction's events do to the data stores — D1 users and meters, D2 reading signatures,
D3 token mirror and escrow, D4 orders, D5 trades, D6 certificates, D7 payments — and the event log.

:func:`apply_transaction` runs inside the database transaction that also claimed the transaction (the
apply-once gate, backend/storage/events.py) and moved the cursor: all of it commits together or not at
all. Every write is idempotent on its own as well (primary keys, ``ON CONFLICT``, "newer than" guards).

D3 is set from the transaction's own post-state (``postTokenBalances``): each GRID or THBC token account
it touched gets the balance the chain reports after it, and an account present before but not after was
closed (balance 0). An escrow vault (owned by an order) also sets its order's ``escrow``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from backend.indexer.decode import ChainEvent
from backend.indexer.source import ChainTransaction
from backend.storage import I64_MAX, Sql, balances, certificates, events, meters, orders, trades, users
from backend.storage import reading_states as readings
from backend.storage.events import EventRecord
from programs.deployment import Deployment

__all__ = ["apply_transaction"]

log = logging.getLogger(__name__)


def _clamp(value: int) -> int:
    """Amounts are u64 on chain, BIGINT here: a value above 2**63 - 1 (never a real balance; possible in a
    price a seller typed) is stored as the maximum, the exact value stays in the event's payload."""
    return min(int(value), I64_MAX)


async def apply_transaction(db: Sql, tx: ChainTransaction, decoded: Sequence[ChainEvent],
                            deployment: Deployment) -> list[EventRecord]:
    """Write ``tx``'s events and balances; return the events as recorded (for the live feed)."""
    recorded: list[EventRecord] = []
    for event in decoded:
        record = await events.insert_event(
            db, signature=tx.signature, ix_index=event.ix_index, event_index=event.event_index, slot=tx.slot,
            block_time=tx.block_time, program=event.program, kind=event.kind, version=event.version,
            subject=event.subject, meter_id=event.meter_id, payload=event.payload, wallets=event.wallets)
        if record is None:
            continue  # applied before (same signature, instruction and event index)
        await _APPLY[event.kind](db, tx, event, record.id)
        recorded.append(record)
    await _balances(db, tx, deployment)
    return recorded


async def _balances(db: Sql, tx: ChainTransaction, d: Deployment) -> None:
    assets = {d.grid_mint: "GRID", d.thbc_mint: "THBC"}
    after = {b.account: b for b in tx.post_token_balances if b.mint in assets}
    before = {b.account: b for b in tx.pre_token_balances if b.mint in assets}
    for account, b in after.items():
        escrow = await _escrow_order(db, str(b.owner))
        await balances.set_token_balance(db, address=str(account), owner=str(b.owner), mint=str(b.mint),
                                         asset=assets[b.mint], amount=_clamp(b.amount), escrow_order=escrow,
                                         closed=False, slot=tx.slot, position=tx.position, signature=tx.signature)
        if escrow is not None:
            await orders.set_escrow(db, escrow, _clamp(b.amount))
    for account, b in before.items():
        if account in after:
            continue
        escrow = await _escrow_order(db, str(b.owner))
        await balances.set_token_balance(db, address=str(account), owner=str(b.owner), mint=str(b.mint),
                                         asset=assets[b.mint], amount=0, escrow_order=escrow, closed=True,
                                         slot=tx.slot, position=tx.position, signature=tx.signature)
        if escrow is not None:
            await orders.set_escrow(db, escrow, 0)


async def _escrow_order(db: Sql, owner: str) -> str | None:
    """An escrow vault is owned by its order's PDA."""
    return owner if await orders.get_order(db, owner) is not None else None


# --- per kind ---------------------------------------------------------------------------------------

async def _user_registered(db: Sql, tx: ChainTransaction, e: ChainEvent, event_id: int) -> None:
    p = e.payload
    await users.record_registration(db, p["wallet"], p["user_type"], p["user"], tx.block_time, tx.signature)


async def _meter_registered(db: Sql, tx: ChainTransaction, e: ChainEvent, event_id: int) -> None:
    p = e.payload
    await meters.record_registered(db, p["meter_id"], p["meter"], p["owner"], bytes.fromhex(p["meter_key"]),
                                   registered_at=tx.block_time, signature=tx.signature, slot=tx.slot)


async def _meter_status(db: Sql, tx: ChainTransaction, e: ChainEvent, event_id: int) -> None:
    await meters.record_status(db, e.payload["meter_id"], e.payload["status"], signature=tx.signature, slot=tx.slot)


async def _meter_key(db: Sql, tx: ChainTransaction, e: ChainEvent, event_id: int) -> None:
    await meters.record_key(db, e.payload["meter_id"], bytes.fromhex(e.payload["meter_key"]),
                            signature=tx.signature, slot=tx.slot)


async def _meter_reassigned(db: Sql, tx: ChainTransaction, e: ChainEvent, event_id: int) -> None:
    p = e.payload
    await meters.record_owner(db, p["meter_id"], p["owner"], bytes.fromhex(p["meter_key"]),
                              signature=tx.signature, slot=tx.slot)


async def _minted(db: Sql, tx: ChainTransaction, e: ChainEvent, event_id: int) -> None:
    p = e.payload
    await meters.record_settlement(db, p["meter_id"], seq=_clamp(p["seq"]), mark_wh=p["settled_mark_wh"],
                                   minted=_clamp(p["minted"]), signature=tx.signature, slot=tx.slot)
    # Readings this backend recorded MINTED without a signature (settled by someone else) get this one.
    await readings.fill_signature(db, p["meter_id"], _clamp(p["seq"]), tx.signature)


async def _order_created(db: Sql, tx: ChainTransaction, e: ChainEvent, event_id: int) -> None:
    p = e.payload
    await orders.record_created(db, address=p["order"], order_id=_clamp(p.get("order_id", 0)), seller=p["seller"],
                                vault=p.get("vault"), amount=_clamp(p["amount"]), price=_clamp(p["price"]),
                                fee_bps=p.get("fee_bps"), created_at=p["timestamp"], expires_at=p.get("expires_at"),
                                signature=tx.signature, slot=tx.slot)


async def _trade(db: Sql, tx: ChainTransaction, e: ChainEvent, event_id: int) -> None:
    p = e.payload
    row = trades.TradeRow(tx.signature, e.ix_index, e.event_index, p["order"], p["seller"], p["buyer"],
                          _clamp(p["amount"]), _clamp(p["price"]), _clamp(p["cost"]), _clamp(p["fee"]),
                          _clamp(p["remaining"]), p["timestamp"], tx.slot, event_id)
    if await trades.insert_trade(db, row):
        await orders.record_fill(db, p["order"], remaining=row.remaining, proceeds=row.cost - row.fee,
                                 signature=tx.signature, slot=tx.slot, at=p["timestamp"])


async def _order_closed(db: Sql, tx: ChainTransaction, e: ChainEvent, event_id: int) -> None:
    state = "CANCELLED" if e.kind == "order_cancelled" else "EXPIRED"
    await orders.record_closed(db, e.payload["order"], state, at=e.payload["timestamp"], signature=tx.signature,
                               slot=tx.slot)


async def _certificate(db: Sql, tx: ChainTransaction, e: ChainEvent, event_id: int) -> None:
    p = e.payload
    status = p["status"]
    at = tx.block_time
    existing = await certificates.get_certificate(db, p["certificate"])
    if existing is None:
        if "from_wh" not in p:
            log.warning("indexer: certificate %s: its account is gone, terms unknown; not recorded",
                        p["certificate"])
            return
        await certificates.record_certificate(db, certificates.CertificateRow(
            p["certificate"], p["meter"], e.meter_id, _clamp(p["index"]), p["holder"], _clamp(p["from_wh"]),
            _clamp(p["to_wh"]), status, p.get("revoke_reason") or None, p["issued_at"], p["expires_at"],
            at if status == "VALID" else None, at if status in ("RETIRED", "REVOKED", "EXPIRED") else None,
            tx.signature, tx.signature, tx.slot, 0))
        return
    await certificates.record_status(
        db, p["certificate"], status, signature=tx.signature, slot=tx.slot,
        holder=p.get("holder") if e.kind == "certificate_transferred" else None,
        revoke_reason=p.get("revoke_reason") if e.kind == "certificate_revoked" else None,
        validated_at=at if e.kind == "certificate_validated" else None,
        closed_at=at if e.kind in ("certificate_retired", "certificate_revoked", "certificate_expired") else None)


_APPLY = {
    "user_registered": _user_registered,
    "meter_registered": _meter_registered,
    "meter_status_changed": _meter_status,
    "meter_key_changed": _meter_key,
    "meter_reassigned": _meter_reassigned,
    "minted": _minted,
    "order_created": _order_created,
    "trade_executed": _trade,
    "order_cancelled": _order_closed,
    "order_expired": _order_closed,
    "certificate_issued": _certificate,
    "certificate_validated": _certificate,
    "certificate_transferred": _certificate,
    "certificate_retired": _certificate,
    "certificate_revoked": _certificate,
    "certificate_expired": _certificate,
}
