"""A STAND-IN for the backend's indexer (issue 10), for the api's tests until that indexer is on main.

It watches the embedded chain's transactions (a LiteSVMChain whose sends are observed), decodes every
event our programs logged with ``programs.events`` (attributed to the program that logged it) and writes
what they say through the backend's storage repositories (backend/storage/: meters, certificates,
orders, trades, payments, events) — D1's meters, D4-D7 and ``chain_events`` — then publishes each
recorded event on an in-process feed. D3 is the one thing events do not carry in full: it reads back the
token accounts a transaction touched, as the indexer does from post-transaction token balances. The api
itself never writes these tables: this module is the only writer in the tests, as the indexer is in
production. To be replaced by backend.indexer.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator, Sequence
from typing import Any

from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.transaction import Transaction
from spl.token.constants import TOKEN_PROGRAM_ID

from backend.api.context import ChainAddresses
from backend.storage import Storage
from backend.storage import balances as d3
from backend.storage import certificates as d6
from backend.storage import events as log
from backend.storage import meters as d1
from backend.storage import orders as d4
from backend.storage import payments as d7
from backend.storage import trades as d5
from programs.certificates import client as certificates
from programs.client.chain import LiteSVMChain, TxResult
from programs.client.events import LoggedEvent
from programs.energy_token import client as energy_token
from programs.events import decode_result_events
from programs.payments import client as payments
from programs.registry import client as registry
from programs.trading import client as trading

_CERTIFICATE_KINDS = {
    certificates.CertificateIssued: "issued", certificates.CertificateValidated: "validated",
    certificates.CertificateTransferred: "transferred", certificates.CertificateRetired: "retired",
    certificates.CertificateRevoked: "revoked", certificates.CertificateExpired: "expired",
}
TOKEN_ACCOUNT_LEN = 165


class InProcessFeed:
    """Fan-out to every subscriber's queue (the shape the api expects of backend.feed)."""

    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()

    def publish(self, event: dict[str, Any]) -> None:
        for queue in list(self._subscribers):
            queue.put_nowait(event)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._subscribers.add(queue)

        async def events() -> AsyncIterator[dict[str, Any]]:
            while True:
                yield await queue.get()

        try:
            yield events()
        finally:
            self._subscribers.discard(queue)


class ObservedChain(LiteSVMChain):
    """LiteSVM whose every successful transaction is handed to the stand-in indexer."""

    indexer: StandInIndexer | None = None

    async def send_signed_transaction(self, tx: Transaction) -> TxResult:
        result = await super().send_signed_transaction(tx)
        if result.ok and self.indexer is not None:
            await self.indexer.apply(list(tx.message.account_keys), result)
        return result

    async def send_transaction(self, instructions: Sequence[Instruction], signers: Sequence[Keypair]) -> TxResult:
        result = await super().send_transaction(instructions, signers)
        if result.ok and self.indexer is not None:
            keys = Message(list(instructions), signers[0].pubkey()).account_keys  # what the transaction touched
            await self.indexer.apply(list(keys), result)
        return result


class StandInIndexer:
    def __init__(self, storage: Storage, chain: ObservedChain, addresses: ChainAddresses,
                 feed: InProcessFeed) -> None:
        self.storage, self.chain, self.a, self.feed = storage, chain, addresses, feed
        self.programs = {"registry": addresses.registry, "energy_token": addresses.energy_token,
                         "trading": addresses.trading, "certificates": addresses.certificates,
                         "payments": addresses.payments}
        self.position = 0
        chain.indexer = self

    async def apply(self, keys: list[Pubkey], result: TxResult) -> None:
        self.position += 1
        signature, slot = str(result.signature), self.chain.svm.get_clock().slot
        fills: dict[Pubkey, trading.OrderFilled] = {}
        for logged in decode_result_events(result, self.programs):
            e = logged.event
            if isinstance(e, trading.OrderFilled):  # told by the TradeExecuted that follows it
                fills[e.order] = e
                await d4.record_fill(self.storage, str(e.order), remaining=e.remaining, proceeds=e.cost - e.fee,
                                     signature=signature, slot=slot)
            elif isinstance(e, trading.TradeExecuted):
                await self._trade(logged, e, fills[e.order], signature, slot)
            else:
                await self._apply(logged, e, signature, slot)
        await self.mirror(keys, signature, slot)

    async def _apply(self, logged: LoggedEvent, e: Any, signature: str, slot: int) -> None:
        s = self.storage

        async def record(kind: str, subject: Any, meter_id: str | None, payload: dict[str, Any],
                         wallets: list[Any]) -> None:
            await self._event(logged, signature, slot, kind, subject, meter_id, payload, wallets)

        if isinstance(e, registry.MeterRegistered):
            await d1.record_registered(s, e.meter_id, str(e.meter), str(e.owner), bytes(e.meter_key),
                                       registered_at=e.registered_at, signature=signature, slot=slot)
            await record("meter_registered", e.meter, e.meter_id, {"meter_id": e.meter_id, "owner": str(e.owner)},
                         [e.owner])
        elif isinstance(e, registry.MeterStatusChanged):
            status = registry.MeterStatus(e.status).name
            await d1.record_status(s, e.meter_id, status, signature=signature, slot=slot)
            await record("meter_status_changed", e.meter, e.meter_id, {"status": status}, [e.owner])
        elif type(e) in _CERTIFICATE_KINDS:
            await self._certificate(logged, e, signature, slot)
        elif isinstance(e, trading.OrderCreated):
            await d4.record_created(s, address=str(e.order), order_id=e.order_id, seller=str(e.seller),
                                    vault=str(e.vault), amount=e.amount, price=e.price, fee_bps=e.fee_bps,
                                    created_at=e.created_at, expires_at=e.expires_at, signature=signature, slot=slot)
            await record("order_created", e.order, None, {"order": str(e.order), "seller": str(e.seller),
                                                           "amount": e.amount, "price": e.price}, [e.seller])
        elif isinstance(e, trading.OrderCancelled | trading.OrderExpired):
            state = "CANCELLED" if isinstance(e, trading.OrderCancelled) else "EXPIRED"
            await d4.record_closed(s, str(e.order), state, at=e.timestamp, signature=signature, slot=slot)
            await record(f"order_{state.lower()}", e.order, None,
                         {"order": str(e.order), "seller": str(e.seller), "amount": e.remaining, "price": None},
                         [e.seller])
        elif isinstance(e, payments.PaymentIssued | payments.Redeemed | energy_token.GridConsumed):
            await self._payment(logged, e, signature, slot)

    async def _trade(self, logged: LoggedEvent, e: trading.TradeExecuted, fill: trading.OrderFilled,
                     signature: str, slot: int) -> None:
        await d5.insert_trade(self.storage, d5.TradeRow(
            signature, logged.instruction_index, logged.index, str(e.order), str(e.seller), str(e.buyer), e.amount,
            e.price, e.cost, e.fee, fill.remaining, e.timestamp, slot))
        payload = {"order": str(e.order), "seller": str(e.seller), "buyer": str(e.buyer), "amount": e.amount,
                   "price": e.price, "cost": e.cost, "fee": e.fee, "remaining": fill.remaining}
        await self._event(logged, signature, slot, "trade_executed", e.order, None, payload, [e.seller, e.buyer])

    async def _payment(self, logged: LoggedEvent, e: Any, signature: str, slot: int) -> None:
        """D7: THBC issued against a deposit, THBC redeemed for a payout, GRID consumed."""
        if isinstance(e, payments.PaymentIssued):
            kind, asset, wallet, reference = "ISSUE", "THBC", e.payer, payments.reference_text(e.reference)
        elif isinstance(e, payments.Redeemed):
            kind, asset, wallet, reference = "REDEEM", "THBC", e.holder, payments.reference_text(e.payout_reference)
        else:
            kind, asset, wallet, reference = "CONSUME", "GRID", e.holder, None
        await d7.insert_payment(self.storage, d7.PaymentRow(
            signature, logged.instruction_index, logged.index, kind, str(wallet), asset, e.amount, reference,
            e.timestamp, slot))
        name = {"ISSUE": "payment_issued", "REDEEM": "payment_redeemed", "CONSUME": "grid_consumed"}[kind]
        await self._event(logged, signature, slot, name, None, None,
                          {"wallet": str(wallet), "asset": asset, "amount": e.amount, "reference": reference},
                          [wallet])

    async def _certificate(self, logged: LoggedEvent, e: Any, signature: str, slot: int) -> None:
        """D6 from the certificate's events: Issued inserts it, the others move its state."""
        status, address = certificates.CertificateStatus(e.status).name, str(e.certificate)
        if isinstance(e, certificates.CertificateIssued):
            await d6.record_certificate(self.storage, d6.CertificateRow(
                address, str(e.meter), e.meter_id, e.index, str(e.holder), e.from_wh, e.to_wh, status, None,
                e.timestamp, e.expires_at, None, None, signature, signature, slot, 0))
        else:
            closing = isinstance(e, certificates.CertificateRetired | certificates.CertificateRevoked
                                 | certificates.CertificateExpired)
            await d6.record_status(
                self.storage, address, status, signature=signature, slot=slot, holder=str(e.holder),
                revoke_reason=getattr(e, "reason", None),
                validated_at=e.timestamp if isinstance(e, certificates.CertificateValidated) else None,
                closed_at=e.timestamp if closing else None)
        stored = await d6.get_certificate(self.storage, address)
        meter = await d1.get_meter(self.storage, stored.meter_id) if stored and stored.meter_id else None
        wallets = [e.holder, *([meter.owner_wallet] if meter else [])]
        if isinstance(e, certificates.CertificateTransferred):
            wallets.append(e.previous_holder)
        await self._event(logged, signature, slot, f"certificate_{_CERTIFICATE_KINDS[type(e)]}", e.certificate,
                          meter.meter_id if meter else None,
                          {"status": status, "holder": str(e.holder), "from_wh": e.from_wh, "to_wh": e.to_wh,
                           "reason": getattr(e, "reason", None)}, wallets)

    async def mirror(self, keys: Sequence[Pubkey], signature: str | None = None, slot: int | None = None) -> None:
        """D3: every token account the transaction touched, as the chain now holds it. Without a
        signature: a test that set an account directly (a seed), a write of its own after the last one."""
        if signature is None:
            self.position += 1
            signature = "seed"
        slot = self.chain.svm.get_clock().slot if slot is None else slot
        for key in keys:
            account = await self.chain.get_account(key)
            if account is None or account.owner != TOKEN_PROGRAM_ID or len(account.data) != TOKEN_ACCOUNT_LEN:
                await self.storage.execute("UPDATE token_accounts SET closed = TRUE, amount = 0 WHERE address = $1",
                                           str(key))
                continue
            raw = bytes(account.data)
            mint, owner = Pubkey.from_bytes(raw[:32]), Pubkey.from_bytes(raw[32:64])
            asset = "GRID" if mint == self.a.grid_mint else "THBC" if mint == self.a.thbc_mint else None
            if asset is None:
                continue
            escrow = await d4.get_order(self.storage, str(owner))
            await d3.set_token_balance(
                self.storage, address=str(key), owner=str(owner), mint=str(mint), asset=asset,
                amount=struct.unpack_from("<Q", raw, 64)[0], escrow_order=escrow.address if escrow else None,
                closed=False, slot=slot, position=self.position, signature=signature)

    async def _event(self, logged: LoggedEvent, signature: str, slot: int, kind: str, subject: Any,
                     meter_id: str | None, payload: dict[str, Any], wallets: list[Any]) -> None:
        unique = sorted({str(w) for w in wallets})
        record = await log.insert_event(
            self.storage, signature=signature, ix_index=logged.instruction_index, event_index=logged.index, slot=slot,
            block_time=None, program=logged.program, kind=kind, version=1,
            subject=None if subject is None else str(subject), meter_id=meter_id, payload=payload, wallets=unique)
        if record is not None:
            self.feed.publish({**record.to_json(), "wallets": unique})
