"""Expire what the chain's clock has passed: open orders (escrow back to the seller) and certificates.

Both instructions may be sent by anyone once ``expires_at <= now`` on chain (trading ExpireOrder,
certificates Expire); the backend's key only pays the fee. The crank finds candidates in the database (D4
open orders and D6 pending/valid certificates with ``expires_at`` at or before the chain's unix time, read
from the Clock sysvar) and sends one transaction each. It writes nothing to the database: the indexer
records the expiry from the program's event, like any other change.

Several crank instances are harmless: the second ExpireOrder of one order is refused (``OrderNotActive``)
before it costs anything, and counted as ``already``.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from spl.token.instructions import get_associated_token_address

from backend.storage import Storage, StorageError, certificates, orders
from programs.certificates import client as certificates_client
from programs.client.chain import Chain, ChainError
from programs.client.errors import TransactionFailure
from programs.deployment import Deployment
from programs.trading import client as trading

__all__ = ["CrankStats", "CrankSummary", "Cranks", "chain_time"]

log = logging.getLogger(__name__)

CLOCK = Pubkey.from_string("SysvarC1ock11111111111111111111111111111111")
# Refusals meaning "someone did it already" (another crank, the seller cancelling, a buyer filling it).
_ALREADY = frozenset({"OrderNotActive", "InvalidState"})


async def chain_time(chain: Chain) -> int:
    """The chain's unix time (Clock sysvar: slot u64, epoch_start_timestamp i64, epoch, leader epoch,
    unix_timestamp i64 at offset 32)."""
    account = await chain.get_account(CLOCK)
    if account is None or len(account.data) < 40:
        raise ChainError("the chain returned no Clock sysvar")
    return int(struct.unpack_from("<q", bytes(account.data), 32)[0])


@dataclass
class CrankSummary:
    orders_expired: list[str] = field(default_factory=list)
    certificates_expired: list[str] = field(default_factory=list)
    already: int = 0
    refused: dict[str, str] = field(default_factory=dict)  # account → error name


@dataclass
class CrankStats:
    runs: int = 0
    orders_expired: int = 0
    certificates_expired: int = 0
    already: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    chain_errors: int = 0


class Cranks:
    def __init__(self, storage: Storage, chain: Chain, deployment: Deployment, *, payer: Keypair,
                 batch: int = 20) -> None:
        self.storage = storage
        self.chain = chain
        self.deployment = deployment
        self.payer = payer
        self.batch = batch
        self.stats = CrankStats()

    async def run_once(self) -> CrankSummary:
        self.stats.runs += 1
        summary = CrankSummary()
        now = await chain_time(self.chain)
        d = self.deployment
        for o in await orders.expired_open_orders(self.storage, now, limit=self.batch):
            seller = Pubkey.from_string(o.seller)
            ix = trading.expire_order(d.trading, seller, o.order_id, get_associated_token_address(seller, d.grid_mint),
                                      order=Pubkey.from_string(o.address))
            name = await self._send(ix, o.address, trading.TRADING_ERRORS.name, summary)
            if name is None:
                summary.orders_expired.append(o.address)
                self.stats.orders_expired += 1
                log.info("cranks: order %s expired (%d GRID base units back to %s)", o.address, o.remaining, o.seller)
        for c in await certificates.expired_open_certificates(self.storage, now, limit=self.batch):
            ix = certificates_client.expire(d.certificates, Pubkey.from_string(c.address))
            name = await self._send(ix, c.address, certificates_client.CERTIFICATES_ERRORS.name, summary)
            if name is None:
                summary.certificates_expired.append(c.address)
                self.stats.certificates_expired += 1
                log.info("cranks: certificate %s expired", c.address)
        return summary

    async def _send(self, ix: Instruction, account: str, name_of: Callable[[TransactionFailure], str],
                    summary: CrankSummary) -> str | None:
        result = await self.chain.send_transaction([ix], [self.payer])
        if result.failure is None:
            return None
        name = name_of(result.failure)
        if name in _ALREADY:
            summary.already += 1
            self.stats.already += 1
        else:
            summary.refused[account] = name
            self.stats.refused[name] += 1
            log.warning("cranks: expiring %s refused: %s (%s)", account, name, " | ".join(result.logs[-2:]))
        return name

    async def run(self, interval: float) -> None:
        while True:
            try:
                await self.run_once()
            except ChainError as exc:
                self.stats.chain_errors += 1
                log.warning("cranks: chain unreachable (%s); trying again in %.0f s", exc, interval)
            except StorageError as exc:
                if not exc.transient:
                    raise
                log.warning("cranks: database unavailable (%s); trying again in %.0f s", exc, interval)
            await asyncio.sleep(interval)
