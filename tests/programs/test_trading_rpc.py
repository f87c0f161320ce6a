"""The trading client over JSON-RPC (RpcChain → HTTP → LiteSVMRpcServer): the code path a cluster uses.

Deploy through the Upgradeable Loader, set up the market, trade, read the TradeExecuted event from the
transaction's logs as getTransaction returns them, and name a refusal reported by preflight.
"""

from __future__ import annotations

import pytest
from solders.keypair import Keypair

from programs.client import RpcChain, deploy_upgradeable, program_so
from programs.client.litesvm_rpc import LiteSVMRpcServer
from programs.trading import client as trading
from programs.trading.sandbox import TradingSandbox, token_amount

pytestmark = pytest.mark.chain

KWH = trading.GRID_PER_KWH


async def test_trade_and_refusal_over_json_rpc() -> None:
    async with LiteSVMRpcServer() as server, RpcChain(server.url, poll_interval=0.02) as chain:
        deployer = Keypair()
        await chain.fund(deployer.pubkey(), 20 * 10**9)
        program_id = (await deploy_upgradeable(chain, program_so("trading"), Keypair(), deployer)).program_id
        market = await TradingSandbox.create(chain, program_id, deployer, fee_bps=25)
        assert (await market.market()).fee_bps == 25
        seller = await market.trader(grid=3 * KWH)
        buyer = await market.trader(thbc=20 * 10**6)
        now = server.svm.get_clock().unix_timestamp
        ix, order_id = market.create_order_ix(seller, 3 * KWH, 2_900_000, now + 3600)
        (await chain.send_transaction([ix], [seller.key])).raise_for_failure()

        result = await chain.send_transaction([market.buy_ix(buyer, seller, order_id, KWH)], [buyer.key])
        result.raise_for_failure()
        [filled, event] = market.events(result)
        assert isinstance(event, trading.TradeExecuted) and isinstance(filled, trading.OrderFilled)
        assert (event.buyer, event.amount, event.cost, event.fee, filled.remaining) == (
            buyer.pubkey, KWH, 2_900_000, 7_250, 2 * KWH)
        assert await token_amount(chain, seller.thbc) == 2_900_000 - 7_250

        refused = await chain.send_transaction([market.buy_ix(seller, seller, order_id, KWH)], [seller.key])
        assert refused.failure is not None
        assert trading.TRADING_ERRORS.name(refused.failure) == "SelfTrade"
        assert "Program log: buy: the seller cannot buy from their own order" in refused.logs
        order = await market.order(seller, order_id)
        assert order is not None and order.state == trading.OrderState.PARTIALLY_FILLED
