"""Compute units per trading instruction, measured in LiteSVM on the committed programs/trading/trading.so.

    python bench/cu_trading.py          # prints the table
    await measure()  # {"buy (partial fill)": 7462, ...}; bench/bench_compute_units.py runs them all

Each figure is the whole transaction's consumption for one top-level instruction, so token and System
program CPIs are included. Keys are fixed so that the figures are deterministic for a given .so: creating
an order checks that its bumps are canonical, which costs ~340 CU more per valid bump above the canonical
one, and that depends on the seller's key and the program id.
"""

from __future__ import annotations

import asyncio

from solders.keypair import Keypair
from solders.pubkey import Pubkey

from programs.client import Chain, LiteSVMChain, TxResult, program_so
from programs.client.deploy import add_program_with_authority
from programs.trading import client as trading
from programs.trading.sandbox import TradingSandbox

__all__ = ["measure", "table"]

TRADING_ID = Pubkey.from_string("Trading111111111111111111111111111111111111")
KWH = trading.GRID_PER_KWH
PRICE = 4_100_000
NOW = 1_764_000_000


def _units(result: TxResult) -> int:
    result.raise_for_failure()
    return result.compute_units


async def _measure(chain: Chain, authority: Keypair) -> dict[str, int]:
    market = await TradingSandbox.create(chain, TRADING_ID, authority, fee_bps=25, initialize=False)
    ix = trading.initialize_market(TRADING_ID, market.authority.pubkey(), market.grid_mint, market.thbc_mint,
                                   market.fee_account, market.fee_bps)
    cu = {"initialize_market": _units(await chain.send_transaction([ix], [market.authority]))}

    seller = await market.trader(grid=100 * KWH, key=Keypair.from_seed(bytes([0xA2]) * 32))
    buyer = await market.trader(thbc=10_000 * 10**6, key=Keypair.from_seed(bytes([0xA3]) * 32))
    ix, order = market.create_order_ix(seller, 10 * KWH, PRICE, NOW + 900)
    cu["create_order"] = _units(await chain.send_transaction([ix], [seller.key]))
    cu["buy (partial fill)"] = _units(await chain.send_transaction([market.buy_ix(buyer, seller, order, 4 * KWH)],
                                                                   [buyer.key]))
    cu["buy (last fill, closes vault)"] = _units(await chain.send_transaction(
        [market.buy_ix(buyer, seller, order, 6 * KWH)], [buyer.key]))
    ix = trading.update_market(TRADING_ID, authority.pubkey(), market.fee_account, 30)
    cu["update_market"] = _units(await chain.send_transaction([ix], [authority]))
    market.fee_bps = 30  # later orders are created under (and accept) the new fee
    cu["close_order"] = _units(await chain.send_transaction(
        [trading.close_order(TRADING_ID, seller.pubkey, order)], [seller.key]))

    ix, cancelled = market.create_order_ix(seller, 10 * KWH, PRICE, NOW + 900)
    _units(await chain.send_transaction([ix], [seller.key]))
    cu["cancel_order"] = _units(await chain.send_transaction(
        [trading.cancel_order(TRADING_ID, seller.pubkey, cancelled, seller.grid)], [seller.key]))

    ix, expiring = market.create_order_ix(seller, 10 * KWH, PRICE, NOW + 60)
    _units(await chain.send_transaction([ix], [seller.key]))
    if isinstance(chain, LiteSVMChain):
        clock = chain.svm.get_clock()
        clock.unix_timestamp = NOW + 60
        chain.svm.set_clock(clock)
    cu["expire_order"] = _units(await chain.send_transaction(
        [trading.expire_order(TRADING_ID, seller.pubkey, expiring, seller.grid)], [buyer.key]))
    return cu


async def measure() -> dict[str, int]:
    """Compute units per instruction, on one fresh LiteSVM."""
    chain = LiteSVMChain()
    authority = Keypair.from_seed(bytes([0xA1]) * 32)
    add_program_with_authority(chain, TRADING_ID, program_so("trading"), authority.pubkey())
    clock = chain.svm.get_clock()
    clock.unix_timestamp = NOW
    chain.svm.set_clock(clock)
    return await _measure(chain, authority)


def table(cu: dict[str, int]) -> str:
    width = max(len(name) for name in cu)
    lines = [f"| {'instruction':<{width}} | compute units |", f"|{'-' * (width + 2)}|--------------:|"]
    lines += [f"| {name:<{width}} | {units:>13,} |" for name, units in cu.items()]
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(asyncio.run(measure())))
