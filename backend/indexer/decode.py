"""Our programs' events in a transaction, decoded into one vocabulary the indexer, the feed and the API share.

:func:`decode_transaction` finds each event our programs emitted (backend/indexer/logs.py: attributed to
its top-level instruction and to the program that logged it — events logged by any other program are
ignored) and decodes it with the program's layout (docs/programs/<name>.md). The result is a list of
:class:`ChainEvent`: ``kind`` (below), the event layout ``version``, the ``subject`` account it is about,
``meter_id`` when it has one, the ``wallets`` it concerns (for per-wallet feeds) and ``payload`` — JSON
values: addresses as base58 strings, amounts as integers in base units.

Kinds: ``user_registered``, ``meter_registered``, ``meter_status_changed``, ``meter_key_changed``,
``meter_reassigned`` (registry); ``minted`` (energy_token: a settlement, minted 0 for a baseline);
``order_created``, ``trade_executed``, ``order_cancelled``, ``order_expired`` (trading);
``certificate_issued``, ``certificate_validated``, ``certificate_transferred``, ``certificate_retired``,
``certificate_revoked``, ``certificate_expired`` (certificates).

Where an event does not carry a field the database keeps, it is read from the instruction that emitted it
(an order's id and expiry from CreateOrder's data, a certificate's new holder from Transfer's) or, for a
certificate's fixed terms (range, dates), from its account.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from solders.pubkey import Pubkey

from backend.indexer.logs import LoggedEvent, events_in_logs
from backend.indexer.source import ChainTransaction, Instr
from programs.certificates import client as certificates
from programs.deployment import Deployment
from programs.registry import client as registry
from programs.trading import client as trading

__all__ = ["ChainEvent", "Decoder", "decode_transaction"]

log = logging.getLogger(__name__)

_USER_KINDS = {int(registry.UserKind.PROSUMER): "prosumer", int(registry.UserKind.CONSUMER): "consumer"}
_METER_STATUS = {int(s): s.name for s in registry.MeterStatus}
_CERT_STATUS = {int(s): s.name for s in certificates.CertificateStatus}
_CERT_KINDS = {b"issue": "certificate_issued", b"validate": "certificate_validated",
               b"transfer": "certificate_transferred", b"retire": "certificate_retired",
               b"revoke": "certificate_revoked", b"expire": "certificate_expired"}
_TRADING_KINDS = {"created": "order_created", "cancelled": "order_cancelled", "expired": "order_expired"}


@dataclass(frozen=True)
class ChainEvent:
    program: str
    kind: str
    version: int
    ix_index: int
    event_index: int
    subject: str | None
    meter_id: str | None
    wallets: tuple[str, ...]
    payload: dict[str, Any] = field(default_factory=dict)


def _meter_id(raw: bytes) -> str:
    return raw.rstrip(b"\0").decode("ascii", "replace")


def _u64(raw: bytes) -> int:
    if len(raw) != 8:
        raise ValueError(f"expected 8 bytes, got {len(raw)}")
    return int(struct.unpack("<Q", raw)[0])


def _i64(raw: bytes) -> int:
    if len(raw) != 8:
        raise ValueError(f"expected 8 bytes, got {len(raw)}")
    return int(struct.unpack("<q", raw)[0])


def _key(raw: bytes) -> str:
    if len(raw) != 32:
        raise ValueError(f"expected a 32-byte key, got {len(raw)} bytes")
    return str(Pubkey.from_bytes(raw))


AccountReader = Callable[[Pubkey], Awaitable[bytes | None]]


class Decoder:
    """Decodes one deployment's events; ``read_account`` fetches an account's data (certificates' terms)."""

    def __init__(self, deployment: Deployment, read_account: AccountReader) -> None:
        self.deployment = deployment
        self.read_account = read_account
        self.unknown = 0  # events of our programs this version does not know (logged, not applied)

    async def decode(self, tx: ChainTransaction) -> list[ChainEvent]:
        return await decode_transaction(tx, self)


async def decode_transaction(tx: ChainTransaction, decoder: Decoder) -> list[ChainEvent]:
    if tx.failed:
        return []
    d = decoder.deployment
    logged = events_in_logs(tx.logs, [ix.program for ix in tx.instructions])
    out: list[ChainEvent] = []
    for event in logged:
        name = d.program_name(event.program)
        if name is None:
            continue
        ix = tx.instructions[event.ix_index]
        try:
            decoded = await _DECODERS[name](decoder, tx, ix, event) if name in _DECODERS else None
        except (ValueError, KeyError, IndexError, struct.error) as exc:
            log.warning("indexer: %s event %d.%d in %s not decoded: %s", name, event.ix_index, event.event_index,
                        tx.signature, exc)
            decoded = None
        if decoded is None:
            decoder.unknown += 1
            continue
        out.append(decoded)
    return out


def _event(name: str, kind: str, e: LoggedEvent, subject: str | None, meter_id: str | None,
           wallets: tuple[str, ...], payload: dict[str, Any], version: int = 1) -> ChainEvent:
    return ChainEvent(name, kind, version, e.ix_index, e.event_index, subject, meter_id, wallets, payload)


# --- registry ------------------------------------------------------------------------------------

async def _registry(decoder: Decoder, tx: ChainTransaction, ix: Instr, e: LoggedEvent) -> ChainEvent | None:
    program = decoder.deployment.registry
    f = e.fields
    tag = f[0] if f else b""
    if tag == b"user" and len(f) == 3 and len(f[2]) == 1:
        wallet = _key(f[1])
        user = str(registry.user_address(program, Pubkey.from_string(wallet))[0])
        return _event("registry", "user_registered", e, user, None, (wallet,),
                      {"wallet": wallet, "user": user, "user_type": _USER_KINDS.get(f[2][0], str(f[2][0]))})
    if tag == b"meter" and len(f) == 4:
        meter_id, owner, key = _meter_id(f[1]), _key(f[2]), f[3]
        meter = str(registry.meter_address(program, f[1])[0])
        return _event("registry", "meter_registered", e, meter, meter_id, (owner,),
                      {"meter_id": meter_id, "meter": meter, "owner": owner, "meter_key": key.hex(),
                       "status": "PENDING"})
    if tag == b"status" and len(f) == 4 and len(f[2]) == len(f[3]) == 1:
        meter_id = _meter_id(f[1])
        meter = str(registry.meter_address(program, f[1])[0])
        return _event("registry", "meter_status_changed", e, meter, meter_id, (),
                      {"meter_id": meter_id, "meter": meter, "previous": _METER_STATUS.get(f[2][0], str(f[2][0])),
                       "status": _METER_STATUS.get(f[3][0], str(f[3][0]))})
    if tag == b"key" and len(f) == 3 and len(f[2]) == 32:
        meter_id = _meter_id(f[1])
        meter = str(registry.meter_address(program, f[1])[0])
        return _event("registry", "meter_key_changed", e, meter, meter_id, (),
                      {"meter_id": meter_id, "meter": meter, "meter_key": f[2].hex()})
    if tag == b"reassign" and len(f) == 4:
        meter_id, owner = _meter_id(f[1]), _key(f[2])
        meter = str(registry.meter_address(program, f[1])[0])
        return _event("registry", "meter_reassigned", e, meter, meter_id, (owner,),
                      {"meter_id": meter_id, "meter": meter, "owner": owner, "meter_key": f[3].hex(),
                       "status": "PENDING"})
    return None


# --- energy token -----------------------------------------------------------------------------------

async def _energy(decoder: Decoder, tx: ChainTransaction, ix: Instr, e: LoggedEvent) -> ChainEvent | None:
    f = e.fields
    if not (len(f) == 5 and f[0] == b"settle"):
        return None
    meter_id = _meter_id(f[1])
    meter = str(registry.meter_address(decoder.deployment.registry, f[1])[0])
    # SettleAndMint's accounts: 0 config, 1 meter, 2 owner's GRID account, 3 GRID mint, …
    destination = ix.accounts[2] if len(ix.accounts) > 2 else None
    owner = next((str(b.owner) for b in tx.post_token_balances if b.account == destination), None)
    minted = _u64(f[3])
    return _event("energy_token", "minted", e, meter, meter_id, (owner,) if owner else (),
                  {"meter_id": meter_id, "meter": meter, "seq": _u64(f[2]), "minted": minted,
                   "settled_mark_wh": _i64(f[4]), "owner": owner,
                   "destination": str(destination) if destination else None})


# --- trading ----------------------------------------------------------------------------------------

async def _trading(decoder: Decoder, tx: ChainTransaction, ix: Instr, e: LoggedEvent) -> ChainEvent | None:
    if len(e.fields) != 1:
        return None
    try:
        event = trading.decode_event(e.fields[0])
    except ValueError:
        return None
    version = e.fields[0][1]
    if isinstance(event, trading.TradeExecuted):
        order = str(event.order)
        return _event("trading", "trade_executed", e, order, None, (str(event.seller), str(event.buyer)), {
            "order": order, "seller": str(event.seller), "buyer": str(event.buyer), "amount": event.amount,
            "price": event.price, "cost": event.cost, "fee": event.fee, "remaining": event.remaining,
            "timestamp": event.timestamp}, version)
    order = str(event.order)
    payload: dict[str, Any] = {"order": order, "seller": str(event.seller), "amount": event.amount,
                               "price": event.price, "timestamp": event.timestamp}
    if event.kind == "created":
        # CreateOrder data: [0] 1, [1..9] order_id, [9..17] amount, [17..25] price, [25..33] expires_at.
        if ix.data[:1] == bytes([trading.IX_CREATE_ORDER]) and len(ix.data) >= 33:
            order_id, _, _, expires_at = struct.unpack_from("<QQQq", ix.data, 1)
            payload |= {"order_id": order_id, "expires_at": expires_at}
        payload["vault"] = str(trading.vault_address(decoder.deployment.trading, event.order)[0])
        # The fee terms are fixed in the order account when it is created (issue 7); the event has no field.
        data = await decoder.read_account(event.order)
        if data is not None:
            try:
                payload["fee_bps"] = trading.Order.decode(data).fee_bps
            except ValueError:
                pass
    return _event("trading", _TRADING_KINDS[event.kind], e, order, None, (str(event.seller),), payload, version)


# --- certificates -----------------------------------------------------------------------------------

async def _certificates(decoder: Decoder, tx: ChainTransaction, ix: Instr, e: LoggedEvent) -> ChainEvent | None:
    f = e.fields
    if not (len(f) == 4 and f[0] in _CERT_KINDS and len(f[3]) == 1):
        return None
    program = decoder.deployment.certificates
    meter = Pubkey.from_bytes(f[1]) if len(f[1]) == 32 else None
    if meter is None:
        return None
    index = _u64(f[2])
    address = certificates.certificate_address(program, meter, index)[0]
    payload: dict[str, Any] = {"certificate": str(address), "meter": str(meter), "index": index,
                               "status": _CERT_STATUS.get(f[3][0], str(f[3][0]))}
    data = await decoder.read_account(address)
    meter_id: str | None = None
    wallets: tuple[str, ...] = ()
    if data is not None:
        cert = certificates.Certificate.decode(data)
        payload |= {"holder": str(cert.owner), "from_wh": cert.from_wh, "to_wh": cert.to_wh,
                    "issued_at": cert.issued_at, "expires_at": cert.expires_at, "revoke_reason": cert.revoke_reason}
        wallets = (str(cert.owner),)
    meter_data = await decoder.read_account(meter)
    if meter_data is not None:
        try:
            meter_id = registry.Meter.decode(meter_data).meter_id
        except ValueError:
            meter_id = None
    if f[0] == b"transfer" and ix.data[:1] == bytes([certificates.IX_TRANSFER]) and len(ix.data) >= 33:
        # Transfer data: [1..33] new holder; the account may have moved on since.
        payload["holder"] = str(Pubkey.from_bytes(ix.data[1:33]))
        wallets = tuple(dict.fromkeys((*wallets, payload["holder"])))
    if f[0] == b"issue" and ix.accounts:
        # Issue: the meter owner (accounts[0]) is the first holder, whoever holds it now.
        payload["holder"] = payload["issuer"] = str(ix.accounts[0])
        wallets = (payload["holder"],)
    return _event("certificates", _CERT_KINDS[f[0]], e, str(address), meter_id, wallets, payload)


_DECODERS: dict[str, Callable[[Decoder, ChainTransaction, Instr, LoggedEvent], Awaitable[ChainEvent | None]]] = {
    "registry": _registry,
    "energy_token": _energy,
    "trading": _trading,
    "certificates": _certificates,
}
