"""Compare the database with the chain: every balance the mirror holds, every order, certificate and meter.

    gridtokenx backend check [--config FILE]        # exit 1 and one line per difference

The indexer writes D1 and D3 to D6 from the chain's events and post-transaction balances; this check reads the
chain's accounts as they are now and reports each field that differs. Run it once the indexer has caught
up: an account changed by a transaction not yet indexed shows as a difference until it is. Token accounts
moved by transactions outside our programs (a plain SPL transfer between two wallets) are not indexed at
all and show here — that is what the check is for.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from solders.pubkey import Pubkey
from spl.token.constants import TOKEN_PROGRAM_ID

from backend.storage import Sql, balances, certificates, meters, orders
from programs.certificates import client as certificates_client
from programs.client.chain import Chain
from programs.deployment import Deployment
from programs.registry import client as registry
from programs.trading import client as trading

__all__ = ["ConsistencyReport", "Discrepancy", "check_consistency"]

_ORDER_STATE = {trading.OrderState.ACTIVE: "ACTIVE", trading.OrderState.PARTIALLY_FILLED: "PARTIALLY_FILLED",
                trading.OrderState.FILLED: "FILLED", trading.OrderState.CANCELLED: "CANCELLED",
                trading.OrderState.EXPIRED: "EXPIRED"}


@dataclass(frozen=True)
class Discrepancy:
    store: str  # D1 meters, D3 token_accounts, D4 orders, D6 certificates
    key: str  # the account address (or meter id)
    field: str
    database: Any
    chain: Any

    def __str__(self) -> str:
        return f"{self.store} {self.key}: {self.field} is {self.database!r} in the database, {self.chain!r} on chain"


@dataclass
class ConsistencyReport:
    checked: dict[str, int]
    discrepancies: list[Discrepancy]

    @property
    def ok(self) -> bool:
        return not self.discrepancies


async def _token(chain: Chain, address: str) -> tuple[str, str, int] | None:
    """(mint, owner, amount) of a live token account, None if closed or absent."""
    account = await chain.get_account(Pubkey.from_string(address))
    if account is None or account.owner != TOKEN_PROGRAM_ID or len(account.data) != 165:
        return None
    data = bytes(account.data)
    return str(Pubkey.from_bytes(data[0:32])), str(Pubkey.from_bytes(data[32:64])), struct.unpack_from("<Q", data,
                                                                                                       64)[0]


async def check_consistency(db: Sql, chain: Chain, deployment: Deployment) -> ConsistencyReport:
    found: list[Discrepancy] = []
    checked = {"token_accounts": 0, "orders": 0, "certificates": 0, "meters": 0}

    def differ(store: str, key: str, name: str, database: Any, on_chain: Any) -> None:
        if database != on_chain:
            found.append(Discrepancy(store, key, name, database, on_chain))

    # D3: every token account the mirror holds.
    for row in await balances.token_accounts(db):
        checked["token_accounts"] += 1
        live = await _token(chain, row.address)
        if live is None:
            differ("D3 token_accounts", row.address, "open", not row.closed, False)
            if row.closed:
                differ("D3 token_accounts", row.address, "amount", row.amount, 0)
            continue
        mint, owner, amount = live
        differ("D3 token_accounts", row.address, "closed", row.closed, False)
        differ("D3 token_accounts", row.address, "amount", row.amount, amount)
        differ("D3 token_accounts", row.address, "owner", row.owner, owner)
        differ("D3 token_accounts", row.address, "mint", row.mint, mint)

    # D4: every order: state and remaining from the order account, escrow from its vault.
    after: str | None = None
    while True:
        page = await orders.list_orders(db, after=after, limit=500)
        if not page:
            break
        after = page[-1].address
        for o in page:
            checked["orders"] += 1
            account = await chain.get_account(Pubkey.from_string(o.address))
            if account is None:
                # CloseOrder returned a finished order's rent: only finished orders may be gone.
                if o.is_open:
                    differ("D4 orders", o.address, "account", "open", "closed")
                continue
            order = trading.Order.decode(bytes(account.data))
            differ("D4 orders", o.address, "state", o.state, _ORDER_STATE[order.state])
            differ("D4 orders", o.address, "remaining", o.remaining, min(order.remaining, 2**63 - 1))
            differ("D4 orders", o.address, "amount", o.amount, min(order.amount, 2**63 - 1))
            differ("D4 orders", o.address, "seller", o.seller, str(order.seller))
            if o.expires_at is not None:
                differ("D4 orders", o.address, "expires_at", o.expires_at, order.expires_at)
            if o.fee_bps is not None:
                differ("D4 orders", o.address, "fee_bps", o.fee_bps, order.fee_bps)
            vault = await _token(chain, str(order.vault))
            differ("D4 orders", o.address, "escrow", o.escrow, vault[2] if vault else 0)

    # D6: status and holder of every certificate.
    cafter: str | None = None
    while True:
        cpage = await certificates.list_certificates(db, after=cafter, limit=500)
        if not cpage:
            break
        cafter = cpage[-1].address
        for c in cpage:
            checked["certificates"] += 1
            account = await chain.get_account(Pubkey.from_string(c.address))
            if account is None:
                differ("D6 certificates", c.address, "account", "present", "absent")
                continue
            cert = certificates_client.Certificate.decode(bytes(account.data))
            differ("D6 certificates", c.address, "status", c.status, cert.status.name)
            differ("D6 certificates", c.address, "holder", c.holder, str(cert.owner))
            differ("D6 certificates", c.address, "range", (c.from_wh, c.to_wh), (cert.from_wh, cert.to_wh))

    # D1: meter status, owner and settled mark.
    mafter: str | None = None
    while True:
        mpage = await meters.list_meters(db, after=mafter, limit=500)
        if not mpage:
            break
        mafter = mpage[-1].meter_id
        for m in mpage:
            checked["meters"] += 1
            meter = await registry.fetch_meter(chain, deployment.registry, m.meter_id)
            if meter is None:
                differ("D1 meters", m.meter_id, "account", "present", "absent")
                continue
            differ("D1 meters", m.meter_id, "status", m.status, meter.status.name)
            differ("D1 meters", m.meter_id, "owner", m.owner_wallet, str(meter.owner))
            if m.settled_mark_wh is not None:
                differ("D1 meters", m.meter_id, "settled_mark_wh", m.settled_mark_wh, meter.settled_net_generation_wh)
    return ConsistencyReport(checked, found)
