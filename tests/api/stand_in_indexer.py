"""A STAND-IN for the backend's indexer (issue 10), for the api's tests until that indexer is on main.

It watches the embedded chain's transactions (a LiteSVMChain whose sends are observed), decodes the
trading program's events and reads back the token accounts a transaction touched, and writes them into
the backend's D3-D5 tables and ``chain_events`` in the shape of backend/storage/schema.py version 2, then
publishes each event on an in-process feed. The api itself never writes these tables: this module is
the only writer in the tests, as the indexer is in production. To be replaced by backend.indexer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

from solders.pubkey import Pubkey
from solders.transaction import Transaction
from spl.memo.constants import MEMO_PROGRAM_ID
from spl.token.constants import TOKEN_PROGRAM_ID

from backend.api.context import ChainAddresses
from backend.api.routes.payments import DEPOSIT_MEMO
from backend.storage import Storage
from programs.certificates import client as certificates
from programs.client.chain import LiteSVMChain, TxResult
from programs.registry import client as registry
from programs.trading import client as trading

_STATES = {1: "ACTIVE", 2: "PARTIALLY_FILLED", 3: "FILLED", 4: "CANCELLED", 5: "EXPIRED"}


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
            await self.indexer.apply(tx, result)
        return result

    async def send_transaction(self, instructions: Any, signers: Any) -> TxResult:
        result = await super().send_transaction(instructions, signers)
        if result.ok and self.indexer is not None:
            # rebuild the message the base class signed, for the accounts it touched
            from solders.message import Message
            tx = Transaction.new_unsigned(Message(list(instructions), signers[0].pubkey()))
            await self.indexer.apply(tx, result)
        return result


class StandInIndexer:
    def __init__(self, storage: Storage, chain: ObservedChain, addresses: ChainAddresses,
                 feed: InProcessFeed) -> None:
        self.storage, self.chain, self.a, self.feed = storage, chain, addresses, feed
        self.position = 0
        chain.indexer = self

    async def apply(self, tx: Transaction, result: TxResult) -> None:
        self.position += 1
        signature, slot, now_ms = str(result.signature), self.chain.svm.get_clock().slot, int(time.time() * 1000)
        keys = tx.message.account_keys
        for ix_index, ix in enumerate(tx.message.instructions):
            program = keys[ix.program_id_index]
            data = bytes(ix.data)
            if program == self.a.registry and data[:1] == bytes([registry.IX_REGISTER_METER]):
                owner, meter = keys[ix.accounts[0]], keys[ix.accounts[2]]
                meter_id = data[2:18].rstrip(b"\0").decode()
                await self.storage.execute(
                    "INSERT INTO meters (meter_id, pda_address, owner_wallet, meter_key, status, updated_ms) "
                    "VALUES ($1, $2, $3, $4, 'PENDING', $5)", meter_id, str(meter), str(owner), data[18:50], now_ms)
                await self._event(signature, ix_index, 0, slot, "registry", "meter_registered", str(meter),
                                  meter_id, {"meter_id": meter_id, "owner": str(owner)}, [str(owner)])
            if program == self.a.registry and data[:1] == bytes([registry.IX_SET_METER_STATUS]):
                meter = keys[ix.accounts[2]]
                status = registry.MeterStatus(data[1]).name
                rows = await self.storage.fetch(
                    "UPDATE meters SET status = $2 WHERE pda_address = $1 RETURNING meter_id, owner_wallet",
                    str(meter), status)
                await self._event(signature, ix_index, 0, slot, "registry", "meter_status", str(meter),
                                  rows[0][0], {"status": status}, [rows[0][1]])
        for ix_index, ix in enumerate(tx.message.instructions):  # D6: every certificate an instruction touched
            if keys[ix.program_id_index] != self.a.certificates or not ix.accounts:
                continue
            data = bytes(ix.data)
            kinds = {1: "issued", 2: "validated", 3: "retired", 4: "revoked", 5: "expired", 6: "transferred"}
            if data[0] not in kinds:
                continue
            position = {1: 4, 2: 2, 3: 1, 4: 2, 5: 0, 6: 1}[data[0]]
            await self._certificate(keys[ix.accounts[position]], signature, ix_index, slot, kinds[data[0]], now_ms)
        memos = [bytes(ix.data).decode(errors="replace") for ix in tx.message.instructions
                 if keys[ix.program_id_index] == MEMO_PROGRAM_ID]
        reference = next((m.removeprefix(DEPOSIT_MEMO) for m in memos if m.startswith(DEPOSIT_MEMO)), None)
        for ix_index, ix in enumerate(tx.message.instructions):  # D7: THBC issued and redeemed, GRID consumed
            data = bytes(ix.data)
            if keys[ix.program_id_index] != TOKEN_PROGRAM_ID or data[:1] not in (b"\x07", b"\x08"):
                continue
            (amount,) = struct.unpack_from("<Q", data, 1)
            if data[0] == 7:  # MintTo: mint, destination, authority
                mint, account = keys[ix.accounts[0]], keys[ix.accounts[1]]
                if mint != self.a.thbc_mint:
                    continue
                holder = await self.chain.get_account(account)
                assert holder is not None
                kind, asset, wallet = "ISSUE", "THBC", str(Pubkey.from_bytes(bytes(holder.data)[32:64]))
            else:  # Burn: account, mint, owner
                mint, wallet = keys[ix.accounts[1]], str(keys[ix.accounts[2]])
                kind, asset = ("REDEEM", "THBC") if mint == self.a.thbc_mint else ("CONSUME", "GRID")
            await self.storage.execute(
                "INSERT INTO payments (signature, ix_index, event_index, kind, wallet, asset, amount, reference, "
                "executed_at, slot) VALUES ($1, $2, 0, $3, $4, $5, $6, $7, $8, $9)", signature, ix_index, kind,
                wallet, asset, amount, reference if kind == "ISSUE" else None,
                self.chain.svm.get_clock().unix_timestamp, slot)
            await self._event(signature, ix_index, 0, slot, "payments", kind.lower(), None, None,
                              {"wallet": wallet, "asset": asset, "amount": amount, "reference": reference}, [wallet])
        for event_index, event in enumerate(trading.decode_events(result, self.a.trading)):
            await self._trading(signature, event_index, slot, event, now_ms)
        await self.mirror(list(keys), signature, slot, now_ms)

    async def mirror(self, keys: list[Pubkey], signature: str = "seed", slot: int = 0, now_ms: int = 0) -> None:
        """D3: every token account the transaction touched, as the chain now holds it."""
        for key in keys:
            account = await self.chain.get_account(key)
            if account is None or account.owner != TOKEN_PROGRAM_ID or len(account.data) != 165:
                await self.storage.execute("UPDATE token_accounts SET closed = TRUE, amount = 0 WHERE address = $1",
                                           str(key))
                continue
            raw = bytes(account.data)
            mint, owner = Pubkey.from_bytes(raw[:32]), Pubkey.from_bytes(raw[32:64])
            (amount,) = struct.unpack_from("<Q", raw, 64)
            asset = "GRID" if mint == self.a.grid_mint else "THBC" if mint == self.a.thbc_mint else None
            if asset is None:
                continue
            escrow = await self.storage.fetch("SELECT address FROM orders WHERE address = $1", str(owner))
            await self.storage.execute(
                "INSERT INTO token_accounts (address, owner, mint, asset, amount, escrow_order, slot, position, "
                "signature, updated_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (address) DO "
                "UPDATE SET amount = excluded.amount, closed = FALSE, escrow_order = excluded.escrow_order",
                str(key), str(owner), str(mint), asset, amount, escrow[0][0] if escrow else None, slot,
                self.position, signature, now_ms)

    async def _certificate(self, address: Pubkey, signature: str, ix_index: int, slot: int, kind: str,
                           now_ms: int) -> None:
        account = await self.chain.get_account(address)
        assert account is not None
        c = certificates.Certificate.decode(bytes(account.data))
        meter = await self.storage.fetch("SELECT meter_id, owner_wallet FROM meters WHERE pda_address = $1",
                                         str(c.meter))
        meter_id = meter[0][0] if meter else None
        await self.storage.execute(
            "INSERT INTO certificates (address, meter_address, meter_id, cert_index, holder, from_wh, to_wh, status, "
            "revoke_reason, issued_at, expires_at, validated_at, closed_at, issued_signature, updated_signature, "
            "updated_slot, updated_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $15, "
            "$16) ON CONFLICT (address) DO UPDATE SET holder = excluded.holder, status = excluded.status, "
            "revoke_reason = excluded.revoke_reason, validated_at = excluded.validated_at, "
            "closed_at = excluded.closed_at, updated_signature = excluded.updated_signature",
            str(address), str(c.meter), meter_id, c.index, str(c.owner), c.from_wh, c.to_wh, c.status.name,
            c.revoke_reason or None, c.issued_at, c.expires_at, c.validated_at or None, c.closed_at or None,
            signature, slot, now_ms)
        wallets = [str(c.owner)] + ([meter[0][1]] if meter else [])
        await self._event(signature, ix_index, 0, slot, "certificates", f"certificate_{kind}", str(address), meter_id,
                          {"status": c.status.name, "holder": str(c.owner), "from_wh": c.from_wh, "to_wh": c.to_wh,
                           "reason": c.revoke_reason}, wallets)

    async def _trading(self, signature: str, index: int, slot: int, event: Any, now_ms: int) -> None:
        kinds = {trading.OrderCreated: "created", trading.OrderCancelled: "cancelled", trading.OrderExpired: "expired"}
        if isinstance(event, trading.TradeExecuted):
            order = str(event.order)
            remaining = await self._sync_order(order, signature, slot, now_ms)
            await self.storage.execute(
                "INSERT INTO trades (signature, ix_index, event_index, order_address, seller, buyer, amount, price, "
                "cost, fee, remaining, executed_at, slot) VALUES ($1, 0, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, "
                "$12)", signature, index, order, str(event.seller), str(event.buyer), event.amount, event.price,
                event.cost, event.fee, remaining, event.timestamp, slot)
            payload = {"order": order, "seller": str(event.seller), "buyer": str(event.buyer), "amount": event.amount,
                       "price": event.price, "cost": event.cost, "fee": event.fee, "remaining": remaining}
            await self._event(signature, 0, index, slot, "trading", "trade_executed", order, None, payload,
                              [str(event.seller), str(event.buyer)])
            return
        kind = kinds.get(type(event))
        if kind is None:  # fills are told by TradeExecuted; market and close events change no row here
            return
        order = str(event.order)
        await self._sync_order(order, signature, slot, now_ms)
        amount = getattr(event, "amount", None)
        await self._event(signature, 0, index, slot, "trading", f"order_{kind}", order, None,
                          {"order": order, "seller": str(event.seller), "amount": amount,
                           "price": getattr(event, "price", None)}, [str(event.seller)])

    async def _sync_order(self, address: str, signature: str, slot: int, now_ms: int) -> int:
        account = await self.chain.get_account(Pubkey.from_string(address))
        assert account is not None
        o = trading.Order.decode(bytes(account.data))
        await self.storage.execute(
            "INSERT INTO orders (address, order_id, seller, vault, amount, remaining, price, proceeds, state, "
            "created_at, expires_at, created_signature, updated_signature, updated_slot, updated_ms, fee_bps) VALUES "
            "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13, $14, $15) "
            "ON CONFLICT (address) DO UPDATE SET remaining = excluded.remaining, proceeds = excluded.proceeds, "
            "state = excluded.state, updated_signature = excluded.updated_signature, "
            "updated_slot = excluded.updated_slot",
            address, o.order_id, str(o.seller), str(o.vault), o.amount, o.remaining, o.price, o.proceeds,
            _STATES[int(o.state)], o.created_at, o.expires_at, signature, slot, now_ms, o.fee_bps)
        return int(o.remaining)

    async def _event(self, signature: str, ix_index: int, event_index: int, slot: int, program: str, kind: str,
                     subject: str | None, meter_id: str | None, payload: dict[str, Any], wallets: list[str]) -> None:
        rows = await self.storage.fetch(
            "INSERT INTO chain_events (signature, ix_index, event_index, slot, program, kind, version, subject, "
            "meter_id, payload, applied_ms) VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, $9, $10) RETURNING id",
            signature, ix_index, event_index, slot, program, kind, subject, meter_id, json.dumps(payload),
            int(time.time() * 1000))
        event_id = int(rows[0][0])
        for wallet in sorted(set(wallets)):
            await self.storage.execute("INSERT INTO event_wallets (wallet, event_id) VALUES ($1, $2)", wallet, event_id)
        self.feed.publish({"id": event_id, "signature": signature, "program": program, "kind": kind,
                           "subject": subject, "meter_id": meter_id, "data": payload, "wallets": wallets})
