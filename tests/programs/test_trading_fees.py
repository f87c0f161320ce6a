"""Fee rules of the trading program (docs/programs/trading.md, "Units, price and rounding"):

- an order pays the fee in force when it was created, at most the max_fee_bps the seller signed: raising
  the market's fee later does not reach it;
- fee = ceil(cost * fee_bps / 10^4): no fill with a non-zero cost is fee-free, so splitting a purchase into
  many small fills pays at least the fee of one fill (and the cost of one fill), each at most one base
  unit more per fill — in the seller's and the fee account's favour;
- 1-base-unit fills cost 1 base unit of THBC and, at a non-zero fee, pay 1 base unit of fee.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from program_testkit import TRADING_ID, refused_without_effect, trading_chain
from solders.keypair import Keypair

from programs.client import LiteSVMChain
from programs.trading import client as trading
from programs.trading.sandbox import Trader, TradingSandbox, token_amount

pytestmark = pytest.mark.chain

NOW = 1_764_000_000
KWH = trading.GRID_PER_KWH
BAHT = 10**6
PRICE = 4_100_000  # 4.10 THBC per kWh


async def _market(fee_bps: int = 25) -> tuple[LiteSVMChain, Keypair, TradingSandbox]:
    admin = Keypair()
    chain = trading_chain(admin, NOW)
    return chain, admin, await TradingSandbox.create(chain, TRADING_ID, admin, fee_bps=fee_bps)


async def _order(market: TradingSandbox, seller: Trader, amount: int, **kw: int) -> int:
    ix, order_id = market.create_order_ix(seller, amount, PRICE, NOW + 900, **kw)
    (await market.chain.send_transaction([ix], [seller.key])).raise_for_failure()
    return order_id


@dataclass(frozen=True)
class Fills:
    trades: list[trading.TradeExecuted]  # the events: all of them unless the logs were truncated
    cost: int  # THBC that left the buyer, from the balances
    fee: int  # THBC that reached the fee account, from the balances


async def _fills(market: TradingSandbox, buyer: Trader, seller: Trader, order_id: int, amounts: list[int]) -> Fills:
    """Buy ``amounts`` from one order as that many Buy instructions in ONE transaction. Totals come from
    the token balances: a cluster keeps at most 10,000 bytes of a transaction's logs, so past ~11 fills the
    later events are cut off ("Log truncated")."""
    chain = market.chain
    paid, fees = await token_amount(chain, buyer.thbc), await token_amount(chain, market.fee_account)
    ixs = [market.buy_ix(buyer, seller, order_id, a) for a in amounts]
    result = await chain.send_transaction(ixs, [buyer.key])
    result.raise_for_failure()
    found = result.decode_events({TRADING_ID: trading.EVENTS})
    trades = found.of(trading.TradeExecuted)
    assert [t.amount for t in trades] == amounts[:len(trades)]
    assert len(trades) == len(amounts) or found.truncated
    return Fills(trades, paid - await token_amount(chain, buyer.thbc),
                 await token_amount(chain, market.fee_account) - fees)


def _expected(amounts: list[int], fee_bps: int = 25) -> tuple[int, int]:
    """Total cost and fee of these fills by the documented rule, fill by fill."""
    costs = [trading.trade_cost(a, PRICE) for a in amounts]
    return sum(costs), sum(trading.trade_fee(c, fee_bps) for c in costs)


async def test_a_fee_raised_after_the_order_was_created_does_not_apply() -> None:
    chain, admin, market = await _market(fee_bps=25)
    seller = await market.trader(grid=10 * KWH)
    buyer = await market.trader(thbc=100 * BAHT)
    order_id = await _order(market, seller, 4 * KWH)
    assert (await market.order(seller, order_id)).fee_bps == 25  # type: ignore[union-attr]

    # The market authority raises the fee to 100 %: under the old rule the seller would get nothing.
    (await chain.send_transaction([trading.update_market(TRADING_ID, admin.pubkey(), market.fee_account, 10_000)],
                                  [admin])).raise_for_failure()
    [trade] = (await _fills(market, buyer, seller, order_id, [KWH])).trades
    assert (trade.cost, trade.fee) == (PRICE, trading.trade_fee(PRICE, 25)) == (4_100_000, 10_250)
    assert await token_amount(chain, seller.thbc) == PRICE - 10_250
    assert await token_amount(chain, market.fee_account) == 10_250

    # A seller who signed for at most 25 bps is not put under the new fee either: the order is refused.
    ix, _ = market.create_order_ix(seller, KWH, PRICE, NOW + 900, max_fee_bps=25)
    await refused_without_effect(chain, trading.TRADING_ERRORS, [ix], [seller.key], "FeeAboveLimit")
    # One who accepts it gets it, and only on that order.
    later = await _order(market, seller, KWH, max_fee_bps=10_000)
    [trade] = (await _fills(market, buyer, seller, later, [KWH // 2])).trades
    assert trade.fee == trade.cost
    [trade] = (await _fills(market, buyer, seller, order_id, [KWH])).trades
    assert trade.fee == 10_250


@pytest.mark.parametrize("amounts", [
    [97_317_073] * 10,          # each costs 399 THBC base units: fee-free under the old floor rounding
    [1] * 20,                   # dust
    [123_456_789] * 7 + [5],    # uneven
    [KWH // 3] * 3,             # a kWh in thirds
], ids=["cost-399-x10", "1-unit-x20", "uneven", "thirds"])
async def test_a_split_purchase_pays_at_least_what_a_single_fill_pays(amounts: list[int]) -> None:
    chain, _, market = await _market(fee_bps=25)
    total = sum(amounts)
    seller = await market.trader(grid=2 * total)
    buyer = await market.trader(thbc=100 * BAHT)
    single_order = await _order(market, seller, total)
    split_order = await _order(market, seller, total)

    single = await _fills(market, buyer, seller, single_order, [total])
    split = await _fills(market, buyer, seller, split_order, amounts)
    n = len(amounts)
    # The fill-by-fill rule is what happened on chain ...
    assert (single.cost, single.fee) == _expected([total])
    assert (split.cost, split.fee) == _expected(amounts)
    assert all(t.fee >= 1 and t.fee == trading.trade_fee(t.cost, 25) for t in split.trades)
    # ... so the split pays at least the single fill's cost and fee, at most one base unit more per fill.
    assert single.cost <= split.cost <= single.cost + n
    assert single.fee <= split.fee <= single.fee + n
    assert split.fee >= n  # no fill with a non-zero cost is fee-free
    assert await token_amount(chain, seller.thbc) == single.cost - single.fee + split.cost - split.fee


async def test_one_base_unit_fills() -> None:
    chain, _, market = await _market(fee_bps=25)
    seller = await market.trader(grid=KWH)
    buyer = await market.trader(thbc=BAHT)
    order_id = await _order(market, seller, 100)
    [trade] = (await _fills(market, buyer, seller, order_id, [1])).trades
    # 1 base unit at 4.10 THBC/kWh is 0.0041 base units of THBC: rounded up to 1, of which the fee is 1.
    assert (trade.amount, trade.cost, trade.fee) == (1, 1, 1)
    assert await token_amount(chain, market.fee_account) == 1
    assert await token_amount(chain, seller.thbc) == 0
    fills = await _fills(market, buyer, seller, order_id, [1] * 20)
    assert (fills.cost, fills.fee) == (20, 20)
    assert {(t.cost, t.fee) for t in fills.trades} == {(1, 1)}
    assert await token_amount(chain, buyer.thbc) == BAHT - 21
    assert await token_amount(chain, buyer.grid) == 21


async def test_one_base_unit_fill_in_a_market_without_fee() -> None:
    chain, _, market = await _market(fee_bps=0)
    seller = await market.trader(grid=KWH)
    buyer = await market.trader(thbc=BAHT)
    order_id = await _order(market, seller, 100)
    [trade] = (await _fills(market, buyer, seller, order_id, [1])).trades
    assert (trade.cost, trade.fee) == (1, 0)
    assert await token_amount(chain, seller.thbc) == 1
    assert await token_amount(chain, market.fee_account) == 0


def test_fee_rounding_in_python_mirrors_the_rule() -> None:
    # ceil(cost * bps / 10^4), never above the cost, 0 only for a zero cost or a zero fee.
    assert [trading.trade_fee(c, 25) for c in (0, 1, 399, 400, 401, 4_100_000)] == [0, 1, 1, 1, 2, 10_250]
    assert trading.trade_fee(7, 10_000) == 7 and trading.trade_fee(10**12, 0) == 0
