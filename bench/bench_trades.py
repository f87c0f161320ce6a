"""How many trades per second does the trading program settle in LiteSVM? Prints trades/s and µs per trade.

A market on the committed programs/trading/trading.so (fee 25 bps) with ``--sellers`` sellers, each
offering ``--trades`` / 2 / sellers orders, and ``--buyers`` buyers funded with THBC. Every order is then
bought twice — a partial fill, then the rest, which closes its vault — so half the trades are the more
expensive last fill. Each trade is one signed Buy transaction (signing included), executed by LiteSVM
with a fresh blockhash, as a cluster would: the escrowed GRID moves to the buyer, THBC to the seller and
the fee account, in one atomic transaction. The order creations are timed too. At the end every balance
is checked: the vaults are closed, each buyer holds the GRID it bought, the sellers and the fee account
hold exactly the THBC the trades' costs say.

    python bench/bench_trades.py                    # 2,000 trades
    python bench/bench_trades.py --trades 500       # quicker

This is the program's own speed on one core (LiteSVM runs the SBPF in-process), without a network or
consensus: an upper bound for what one backend can push, not a cluster's throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from solders.keypair import Keypair

from programs.client import LiteSVMChain, program_so
from programs.client.deploy import add_program_with_authority
from programs.trading import client as trading
from programs.trading.sandbox import Trader, TradingSandbox, token_amount

KWH = trading.GRID_PER_KWH
PRICE = 3_500_000  # 3.50 THBC per kWh
FEE_BPS = 25


async def bench(trades: int, sellers_n: int, buyers_n: int) -> int:
    chain = LiteSVMChain()
    authority = Keypair()
    program = Keypair().pubkey()
    add_program_with_authority(chain, program, program_so("trading"), authority.pubkey())
    now = chain.svm.get_clock().unix_timestamp
    market = await TradingSandbox.create(chain, program, authority, fee_bps=FEE_BPS)
    orders_n = trades // 2
    per_seller = -(-orders_n // sellers_n)
    sellers = [await market.trader(grid=per_seller * KWH) for _ in range(sellers_n)]
    buyers = [await market.trader(thbc=10**12) for _ in range(buyers_n)]

    started = time.perf_counter()
    orders: list[tuple[Trader, int]] = []
    for n in range(orders_n):
        seller = sellers[n % sellers_n]
        ix, order_id = market.create_order_ix(seller, KWH, PRICE, now + 3600)
        (await chain.send_transaction([ix], [seller.key])).raise_for_failure()
        orders.append((seller, order_id))
    created_s = time.perf_counter() - started

    cu: list[int] = []
    started = time.perf_counter()
    done = 0
    for part in (KWH // 4, KWH - KWH // 4):  # a partial fill of every order, then the rest
        for n, (seller, order_id) in enumerate(orders):
            buyer = buyers[n % buyers_n]
            result = await chain.send_transaction([market.buy_ix(buyer, seller, order_id, part)], [buyer.key])
            result.raise_for_failure()
            cu.append(result.compute_units)
            done += 1
    traded_s = time.perf_counter() - started

    # Every trade settled exactly: vaults closed, GRID with the buyers, THBC with sellers and fee account.
    expected_seller = expected_fee = 0
    for part in (KWH // 4, KWH - KWH // 4):
        cost = trading.trade_cost(part, PRICE)
        fee = trading.trade_fee(cost, FEE_BPS)
        expected_seller += (cost - fee) * orders_n
        expected_fee += fee * orders_n
    got_grid = sum([await token_amount(chain, b.grid) for b in buyers])
    got_seller = sum([await token_amount(chain, s.thbc) for s in sellers])
    got_fee = await token_amount(chain, market.fee_account)
    states = [await market.order(seller, order_id) for seller, order_id in orders]
    open_vaults = [s for s in states if s is None or s.state != trading.OrderState.FILLED]
    if (got_grid, got_seller, got_fee, open_vaults) != (orders_n * KWH, expected_seller, expected_fee, []):
        print(f"balances disagree: GRID {got_grid} vs {orders_n * KWH}, seller THBC {got_seller} vs "
              f"{expected_seller}, fees {got_fee} vs {expected_fee}, unfilled orders {len(open_vaults)}",
              file=sys.stderr)
        return 1

    rate = done / traded_s
    print(f"trading bench: {done} trades (every order bought twice) by {buyers_n} buyers from {sellers_n} sellers, "
          f"LiteSVM, signing included")
    print(f"  create_order: {orders_n / created_s:,.0f} orders/s ({created_s / orders_n * 1e6:,.0f} µs each)")
    print(f"  buy:          {rate:,.0f} trades/s ({traded_s / done * 1e6:,.0f} µs each; "
          f"{min(cu):,}-{max(cu):,} compute units)")
    print(f"  balances checked: {orders_n * KWH / KWH:,.0f} kWh delivered, sellers paid "
          f"{expected_seller / 10**6:,.2f} THBC, fees {expected_fee / 10**6:,.2f} THBC")
    print(f"  load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"FIGURE settled_trades_per_s {rate:.0f} trades/s")
    print(f"FIGURE orders_created_per_s {orders_n / created_s:.0f} orders/s")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trades", type=int, default=2000, help="Buy transactions (two per order)")
    parser.add_argument("--sellers", type=int, default=10)
    parser.add_argument("--buyers", type=int, default=20)
    args = parser.parse_args()
    if args.trades < 2 or args.sellers < 1 or args.buyers < 1:
        parser.error("--trades must be at least 2, --sellers and --buyers at least 1")
    return asyncio.run(bench(args.trades, args.sellers, args.buyers))


if __name__ == "__main__":
    sys.exit(main())
