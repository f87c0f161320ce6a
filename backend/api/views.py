"""How the api shows the data stores' rows: one function per row type, from the repository's dataclass
(backend/storage/<store>.py) to the JSON object the api answers. The names are the api's (docs/api.md):
``kind`` for a user's type, ``owner`` for a meter's wallet, ``state`` for a certificate's status,
``order`` for a trade's order, ``id`` for a trade's or payment's event id (their list cursor)."""

from __future__ import annotations

from typing import Any

from backend.storage import certificates, events, meters, orders, payments, trades, users

__all__ = ["certificate_view", "event_view", "meter_view", "order_view", "payment_view", "trade_view", "user_view"]


def user_view(u: users.UserRow) -> dict[str, Any]:
    return {"wallet": u.wallet_address, "name": u.name, "kind": u.user_type, "pda": u.pda_address,
            "registered_at": u.registered_at, "created_ms": u.created_ms}


def meter_view(m: meters.MeterRow) -> dict[str, Any]:
    return {"meter_id": m.meter_id, "owner": m.owner_wallet, "pda": m.pda_address, "status": m.status,
            "registered_at": m.registered_at, "settled_seq": m.settled_seq, "minted": m.minted_base_units}


def order_view(o: orders.OrderRow) -> dict[str, Any]:
    return {"address": o.address, "seller": o.seller, "order_id": o.order_id, "amount": o.amount,
            "remaining": o.remaining, "price": o.price, "fee_bps": o.fee_bps, "proceeds": o.proceeds,
            "state": o.state, "created_at": o.created_at, "expires_at": o.expires_at,
            "created_signature": o.created_signature}


def trade_view(t: trades.TradeRow) -> dict[str, Any]:
    return {"id": t.event_id, "executed_at": t.executed_at, "signature": t.signature, "ix_index": t.ix_index,
            "event_index": t.event_index, "order": t.order_address, "seller": t.seller, "buyer": t.buyer,
            "amount": t.amount, "price": t.price, "cost": t.cost, "fee": t.fee, "remaining": t.remaining}


def certificate_view(c: certificates.CertificateRow) -> dict[str, Any]:
    return {"address": c.address, "meter_id": c.meter_id, "holder": c.holder, "index": c.cert_index,
            "from_wh": c.from_wh, "to_wh": c.to_wh, "state": c.status, "revoke_reason": c.revoke_reason,
            "issued_at": c.issued_at, "expires_at": c.expires_at, "validated_at": c.validated_at,
            "closed_at": c.closed_at}


def payment_view(p: payments.PaymentRow) -> dict[str, Any]:
    return {"id": p.event_id, "executed_at": p.executed_at, "signature": p.signature, "ix_index": p.ix_index,
            "event_index": p.event_index, "kind": p.kind, "wallet": p.wallet, "asset": p.asset, "amount": p.amount,
            "reference": p.reference}


def event_view(e: events.EventRecord) -> dict[str, Any]:
    """One entry of a certificate's (or any account's) history."""
    return {"event": e.kind, "at": e.block_time, "signature": e.signature, "data": e.payload}
