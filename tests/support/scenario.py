"""One market scenario on a deployed chain, through the backend's real ingest and minter: for the indexer,
report and consistency tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from solders.keypair import Keypair

from backend.chain.embedded import EmbeddedChain
from backend.minting import MintingWorker, MintPolicy
from backend.storage import Storage
from programs.certificates import client as certs
from programs.client.chain import Chain
from programs.energy_token.bootstrap import register_active_meter
from programs.registry import client as registry
from tests.support import market
from tests.support.chainworld import GATEWAY_KEY, ingest, reading

__all__ = ["KWH", "PRICE", "Scenario", "run_scenario"]

KWH = 10**9
PRICE = 3_500_000  # THBC base units per kWh


@dataclass
class Scenario:
    seller: market.Wallet
    buyer: market.Wallet
    orders: dict[str, Any]
    certificate: Any
    expected_kinds: dict[str, int]


async def run_scenario(chain: Chain, embedded: EmbeddedChain, storage: Storage) -> Scenario:
    """Users, a meter, minting, three orders (partly bought twice, cancelled, expired), a certificate."""
    d = embedded.deployment
    seller_key = Keypair()
    await chain.fund(seller_key.pubkey(), 10**9)
    meter = await register_active_meter(chain, d.grid, embedded.admin, seller_key, "pv-idx",
                                        bytes(GATEWAY_KEY.verify_key))
    await ingest(storage, *(reading("pv-idx", s, 1_000, 5_000 + 4_000 * s) for s in range(3)))
    minter = MintingWorker(storage, chain, d.grid, relayer=embedded.relayer, policy=MintPolicy(retry_first_s=0))
    assert (await minter.run_once()).minted == {"pv-idx": 8 * KWH}  # 8,000 Wh above the baseline
    seller = await market.existing_wallet(chain, d, seller_key)
    buyer = await market.new_wallet(chain, d, kind=registry.UserKind.CONSUMER, thbc=100 * 10**6,
                                    payment_gateway=embedded.payment_gateway)
    now = await market.chain_now(chain)
    await market.create_order(chain, d, seller, 1, 4 * KWH, PRICE, now + 3_600)
    await market.buy(chain, d, buyer, seller, 1, KWH)
    await market.buy(chain, d, buyer, seller, 1, KWH // 2)
    await market.create_order(chain, d, seller, 2, KWH, PRICE, now + 3_600)
    await market.cancel(chain, d, seller, 2)
    await market.create_order(chain, d, seller, 3, KWH, PRICE, now + 30)
    embedded.chain.advance_time(60)
    await market.expire(chain, d, embedded.relayer, seller, 3)
    cert = await market.certify(chain, d, seller_key, embedded.admin, meter.address, 0, 3_000)
    (await chain.send_transaction([certs.transfer(d.certificates, seller.address, cert, buyer.address)],
                                  [seller_key])).raise_for_failure()
    (await chain.send_transaction([certs.retire(d.certificates, buyer.address, cert)], [buyer.key])).raise_for_failure()
    # D7: the consumer redeems 2 THBC for a bank payout and burns the GRID it consumed.
    await market.redeem_thbc(chain, d, buyer, 2 * 10**6, "PAYOUT-1")
    await market.consume_grid(chain, d, buyer, KWH // 2)
    kinds = {"registry_initialized": 1, "energy_token_initialized": 1, "payments_initialized": 1,
             "market_initialized": 1, "certificates_initialized": 1,
             "user_registered": 2, "meter_registered": 1, "meter_status_changed": 1,
             "settlement_recorded": 2, "baseline_recorded": 1, "minted": 1, "thbc_issued": 1,
             "order_created": 3, "order_filled": 2, "trade_executed": 2, "order_cancelled": 1, "order_expired": 1,
             "certificate_issued": 1, "certificate_validated": 1, "certificate_transferred": 1,
             "certificate_retired": 1, "thbc_redeemed": 1, "grid_consumed": 1}
    addresses = {name: str(market.order_address(d, seller, i)) for name, i in (("bought", 1), ("cancelled", 2),
                                                                                 ("expired", 3))}
    return Scenario(seller, buyer, addresses, cert, kinds)
