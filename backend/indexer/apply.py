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

import dataclasses
import logging
from collections.abc import Sequence

from backend.indexer.decode import ChainEvent
from backend.indexer.source import ChainTransaction
from backend.storage import I64_MAX, Sql, balances, certificates, events, meters, orders, payments, trades, users
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
        if event.meter_id is None and event.program == "certificates":
            # Only CertificateIssued names the meter id; later events of the certificate inherit it.
            known = await certificates.get_certificate(db, str(event.subject))
            if known is not None and known.meter_id is not None:
                event = dataclasses.replace(event, meter_id=known.meter_id)
        record = await events.insert_event(
            db, signature=tx.signature, ix_index=event.ix_index, event_index=event.event_index, slot=tx.slot,
            block_time=tx.block_time, program=event.program, kind=event.kind, version=event.version,
            subject=event.subject, meter_id=event.meter_id, payload=event.payload, wallets=event.wallets)
        if record is None:
            continue  # applied before (same signature, instruction and event index)
        await _APPLY.get(event.kind, _recorded_only)(db, tx, event, record.id)
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
    await users.record_registration(db, p["wallet"], p["user_type"], p["user"], p["registered_at"], tx.signature)


async def _meter_registered(db: Sql, tx: ChainTransaction, e: ChainEvent, event_id: int) -> None:
    p = e.payload
    await meters.record_registered(db, p["meter_id"], p["meter"], p["owner"], bytes.fromhex(p["meter_key"]),
                                   registered_at=p["registered_at"], signature=tx.signature, slot=tx.slot)


async def _meter_status(db: Sql, tx: ChainTransaction, e: ChainEvent, event_id: int) -> None:
    await meters.record_status(db, e.payload["meter_id"], e.payload["status"], signature=tx.signature, slot=tx.slot)


async def _meter_key(db: Sql, tx: ChainTransaction, e: ChainEvent, event_id: int) -> None:
    await meters.record_key(db, e.payload["meter_id"], bytes.fromhex(e.payload["meter_key"]),
                            signature=tx.signature, slot=tx.slot)


async def _meter_reassigned(db: Sql, tx: ChainTransaction, e: ChainEvent, event_id: int) -> None:
    p = e.payload
    await meters.record_owner(db, p["meter_id"], p["owner"], bytes.fromhex(p["meter_key"]),
                              signature=tx.signature, slot=tx.slot)


async def _settlement_recorded(db: Sql, tx: ChainTransaction, e: ChainEvent, event_id: int) -> None:
    p = e.payload
    await meters.record_settlement(db, p["meter_id"], seq=_clamp(p["seq"]), mark_wh=p["settled_net_generation_wh"],
                                   minted=0, signature=tx.signature, slot=tx.slot)


async def _baseline(db: Sql, tx: ChainTransaction, e: ChainEvent, event_id: int) -> None:
    # Readings this backend recorded MINTED without a signature (settled by someone else) get this one.
    await readings.fill_signature(db, e.payload["meter_id"], _clamp(e.payload["seq"]), tx.signature)


async def _minted(db: Sql, tx: ChainTransaction, e: ChainEvent, event_id: int) -> None:
    p = e.payload
    await meters.record_settlement(db, p["meter_id"], seq=_clamp(p["seq"]), mark_wh=p["mark"],
                                   minted=_clamp(p["amount"]), signature=tx.signature, slot=tx.slot)
    await readings.fill_signature(db, p["meter_id"], _clamp(p["seq"]), tx.signature)


async def _order_created(db: Sql, tx: ChainTransaction, e: ChainEvent, event_id: int) -> None:
    p = e.payload
    await orders.record_created(db, address=p["order"], order_id=_clamp(p["order_id"]), seller=p["seller"],
                                vault=p["vault"], amount=_clamp(p["amount"]), price=_clamp(p["price"]),
                                fee_bps=p["fee_bps"], created_at=p["created_at"], expires_at=p["expires_at"],
                                signature=tx.signature, slot=tx.slot)


async def _order_filled(db: Sql, tx: ChainTransaction, e: ChainEvent, event_id: int) -> None:
    p = e.payload
    await orders.record_filled(db, p["order"], remaining=_clamp(p["remaining"]), proceeds=_clamp(p["proceeds"]),
                               state=p["state"], at=tx.block_time, signature=tx.signature, slot=tx.slot)


async def _trade(db: Sql, tx: ChainTransaction, e: ChainEvent, event_id: int) -> None:
    p = e.payload
    row = trades.TradeRow(tx.signature, e.ix_index, e.event_index, p["order"], p["seller"], p["buyer"],
                          _clamp(p["amount"]), _clamp(p["price"]), _clamp(p["cost"]), _clamp(p["fee"]),
                          _clamp(p.get("remaining", 0)), p["timestamp"], tx.slot, event_id)
    await trades.insert_trade(db, row)


async def _order_closed(db: Sql, tx: ChainTransaction, e: ChainEvent, event_id: int) -> None:
    state = "CANCELLED" if e.kind == "order_cancelled" else "EXPIRED"
    await orders.record_closed(db, e.payload["order"], state, at=e.payload["timestamp"], signature=tx.signature,
                               slot=tx.slot)


async def _certificate(db: Sql, tx: ChainTransaction, e: ChainEvent, event_id: int) -> None:
    p = e.payload
    at = p["timestamp"]
    if e.kind == "certificate_issued":
        await certificates.record_certificate(db, certificates.CertificateRow(
            p["certificate"], p["meter"], p["meter_id"], _clamp(p["index"]), p["holder"], _clamp(p["from_wh"]),
            _clamp(p["to_wh"]), p["status"], None, at, p["expires_at"], None, None, tx.signature, tx.signature,
            tx.slot, 0))
        return
    await certificates.record_status(
        db, p["certificate"], p["status"], signature=tx.signature, slot=tx.slot, holder=p["holder"],
        revoke_reason=p.get("reason") if e.kind == "certificate_revoked" else None,
        validated_at=at if e.kind == "certificate_validated" else None,
        closed_at=at if e.kind in ("certificate_retired", "certificate_revoked", "certificate_expired") else None)


async def _payment(db: Sql, tx: ChainTransaction, e: ChainEvent, event_id: int) -> None:
    p = e.payload
    if e.kind == "thbc_issued":
        kind, wallet, asset, reference = "ISSUE", str(p["payer"]), "THBC", p.get("reference")
    elif e.kind == "thbc_redeemed":
        kind, wallet, asset, reference = "REDEEM", str(p["holder"]), "THBC", p.get("payout_reference")
    else:
        kind, wallet, asset, reference = "CONSUME", str(p["holder"]), "GRID", None
    await payments.insert_payment(db, payments.PaymentRow(tx.signature, e.ix_index, e.event_index, kind, wallet, asset,
                                                          _clamp(p["amount"]), reference, p.get("timestamp"), tx.slot,
                                                          event_id))


async def _recorded_only(db: Sql, tx: ChainTransaction, e: ChainEvent, event_id: int) -> None:
    """Configuration and bookkeeping events: in ``chain_events`` and the feed, nothing else to change."""


_APPLY = {
    "user_registered": _user_registered,
    "meter_registered": _meter_registered,
    "meter_status_changed": _meter_status,
    "meter_key_changed": _meter_key,
    "meter_reassigned": _meter_reassigned,
    "settlement_recorded": _settlement_recorded,
    "baseline_recorded": _baseline,
    "minted": _minted,
    "grid_consumed": _payment,
    "order_created": _order_created,
    "order_filled": _order_filled,
    "trade_executed": _trade,
    "order_cancelled": _order_closed,
    "order_expired": _order_closed,
    "order_closed": _recorded_only,
    "certificate_issued": _certificate,
    "certificate_validated": _certificate,
    "certificate_transferred": _certificate,
    "certificate_retired": _certificate,
    "certificate_revoked": _certificate,
    "certificate_expired": _certificate,
    "thbc_issued": _payment,
    "thbc_redeemed": _payment,
}
