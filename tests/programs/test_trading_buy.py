"""trading Buy in LiteSVM: partial and full fills with exact balances and events, and every refusal."""

from __future__ import annotations

import pytest
from program_testkit import TRADING_ID, refused_by, set_unix_time, trading_chain, with_account
from solders.account import Account
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from programs.client import LiteSVMChain
from programs.trading import client as trading
from programs.trading.sandbox import Trader, TradingSandbox, token_amount

pytestmark = pytest.mark.chain

NOW = 1_764_000_000
KWH = trading.GRID_PER_KWH
BAHT = 10**6
PRICE = 4_100_000  # 4.10 THBC per kWh, in THBC base units


assert_refused = refused_by(trading.TRADING_ERRORS)


@pytest.fixture
def admin() -> Keypair:
    """The program's upgrade authority, hence the market authority."""
    return Keypair()


@pytest.fixture
async def chain(admin: Keypair) -> LiteSVMChain:
    return trading_chain(admin, NOW)


@pytest.fixture
async def market(chain: LiteSVMChain, admin: Keypair) -> TradingSandbox:
    return await TradingSandbox.create(chain, TRADING_ID, admin, fee_bps=25)


@pytest.fixture
async def seller(market: TradingSandbox) -> Trader:
    return await market.trader(grid=20 * KWH)


@pytest.fixture
async def buyer(market: TradingSandbox) -> Trader:
    return await market.trader(thbc=1_000 * BAHT)


async def _order(market: TradingSandbox, seller: Trader, amount: int = 10 * KWH, price: int = PRICE,
                 expires_in: int = 900) -> int:
    ix, order_id = market.create_order_ix(seller, amount, price, NOW + expires_in)
    (await market.chain.send_transaction([ix], [seller.key])).raise_for_failure()
    return order_id


async def _balances(market: TradingSandbox, *accounts: Pubkey) -> list[int]:
    return [await token_amount(market.chain, a) for a in accounts]


async def test_partial_then_full_fill_moves_energy_and_money(
        chain: LiteSVMChain, market: TradingSandbox, seller: Trader, buyer: Trader) -> None:
    order_id = await _order(market, seller)
    order_key = trading.order_address(TRADING_ID, seller.pubkey, order_id)[0]
    vault = trading.vault_address(TRADING_ID, order_key)[0]
    vault_rent = (await chain.get_account(vault)).lamports  # type: ignore[union-attr]
    seller_lamports = (await chain.get_account(seller.pubkey)).lamports  # type: ignore[union-attr]

    first = await chain.send_transaction([market.buy_ix(buyer, seller, order_id, 3 * KWH)], [buyer.key])
    first.raise_for_failure()
    cost1 = trading.trade_cost(3 * KWH, PRICE)
    fee1 = trading.trade_fee(cost1, 25)
    assert (cost1, fee1) == (12_300_000, 30_750)  # 12.30 THBC, of which 0.25 % = 0.03075 THBC fee
    assert market.events(first) == [
        trading.OrderFilled(order_key, seller.pubkey, buyer.pubkey, 3 * KWH, cost1, fee1, 7 * KWH, cost1 - fee1,
                            trading.OrderState.PARTIALLY_FILLED),
        trading.TradeExecuted(order_key, seller.pubkey, buyer.pubkey, buyer.pubkey, market.fee_account, 3 * KWH,
                              3 * KWH, PRICE, cost1, fee1, NOW)]
    order = await market.order(seller, order_id)
    assert order is not None and order.state == trading.OrderState.PARTIALLY_FILLED
    assert (order.remaining, order.proceeds) == (7 * KWH, cost1 - fee1)
    assert await _balances(market, vault, buyer.grid, buyer.thbc, seller.thbc, market.fee_account) == [
        7 * KWH, 3 * KWH, 1_000 * BAHT - cost1, cost1 - fee1, fee1]

    second = await chain.send_transaction([market.buy_ix(buyer, seller, order_id, 7 * KWH)], [buyer.key])
    second.raise_for_failure()
    cost2 = trading.trade_cost(7 * KWH, PRICE)
    fee2 = trading.trade_fee(cost2, 25)
    [filled, event] = market.events(second)
    assert isinstance(event, trading.TradeExecuted) and (event.amount, event.cost, event.fee) == (7 * KWH, cost2, fee2)
    assert filled == trading.OrderFilled(order_key, seller.pubkey, buyer.pubkey, 7 * KWH, cost2, fee2, 0,
                                         cost1 - fee1 + cost2 - fee2, trading.OrderState.FILLED)
    order = await market.order(seller, order_id)
    assert order is not None and order.state == trading.OrderState.FILLED
    assert (order.remaining, order.proceeds) == (0, cost1 - fee1 + cost2 - fee2)
    # The emptied vault is closed and its rent goes back to the seller who paid it.
    assert await chain.get_account(vault) is None
    assert (await chain.get_account(seller.pubkey)).lamports == seller_lamports + vault_rent  # type: ignore[union-attr]
    assert await _balances(market, buyer.grid, buyer.thbc, seller.thbc, market.fee_account, seller.grid) == [
        10 * KWH, 1_000 * BAHT - cost1 - cost2, cost1 + cost2 - fee1 - fee2, fee1 + fee2, 10 * KWH]
    assert second.compute_units < 20_000


@pytest.mark.parametrize(("amount", "price", "cost"), [
    (1, PRICE, 1),                           # 1 base unit costs 0.0041 base units: rounded up to 1
    (KWH, PRICE, PRICE),                     # exactly one kWh
    (KWH + 1, 2_200_000, 2_200_001),         # a hair over a kWh rounds up
    (1_000_000 * KWH, 4_100_000, 4_100_000 * 10**6),  # 1 GWh: amount * price needs more than 64 bits
])
async def test_cost_is_rounded_up_and_exact_beyond_64_bits(
        chain: LiteSVMChain, market: TradingSandbox, amount: int, price: int, cost: int) -> None:
    seller = await market.trader(grid=amount)
    buyer = await market.trader(thbc=cost)
    order_id = await _order(market, seller, amount, price)
    result = await chain.send_transaction([market.buy_ix(buyer, seller, order_id, amount)], [buyer.key])
    result.raise_for_failure()
    [_, event] = market.events(result)
    assert isinstance(event, trading.TradeExecuted)
    assert event.cost == cost == trading.trade_cost(amount, price)
    assert event.fee == -(-cost * 25 // 10_000)  # rounded up: never 0 for a non-zero cost
    assert await _balances(market, buyer.thbc, seller.thbc, market.fee_account) == [
        0, cost - event.fee, event.fee]


async def test_refusals_leave_every_balance_untouched(
        chain: LiteSVMChain, market: TradingSandbox, seller: Trader, buyer: Trader) -> None:
    order_id = await _order(market, seller)
    other = await market.trader(grid=KWH, thbc=10 * BAHT)
    before = await _balances(market, seller.grid, buyer.grid, buyer.thbc, seller.thbc, market.fee_account)
    buy = market.buy_ix(buyer, seller, order_id, KWH)
    order_key = trading.order_address(TRADING_ID, seller.pubkey, order_id)[0]

    # Missing signer: the buyer's key is listed but someone else pays and signs.
    unsigned = trading.buy(TRADING_ID, buyer.pubkey, seller.pubkey, order_id, KWH, buyer_grid=buyer.grid,
                           buyer_thbc=buyer.thbc, seller_thbc=seller.thbc, fee_account=market.fee_account,
                           buyer_signs=False)
    assert_refused(await chain.send_transaction([unsigned], [other.key]), "MissingRequiredSignature")
    # Self-trade: the seller buys from their own order.
    assert_refused(await chain.send_transaction([market.buy_ix(seller, seller, order_id, KWH)], [seller.key]),
                   "SelfTrade")
    # More than remains, and nothing at all.
    assert_refused(await chain.send_transaction([market.buy_ix(buyer, seller, order_id, 10 * KWH + 1)],
                                                [buyer.key]), "AmountExceedsRemaining")
    assert_refused(await chain.send_transaction([market.buy_ix(buyer, seller, order_id, 0)], [buyer.key]),
                   "ZeroAmount")
    # Short THBC balance: `other` holds 10 THBC, one kWh costs 4.10, three cost 12.30.
    poor = await market.trader(thbc=10 * BAHT)
    assert_refused(await chain.send_transaction([market.buy_ix(poor, seller, order_id, 3 * KWH)], [poor.key]),
                   "InsufficientBalance")
    # Wrong mint: GRID delivered into a THBC account.
    assert_refused(await chain.send_transaction([with_account(buy, 4, AccountMeta(buyer.thbc, False, True))],
                                                [buyer.key]), "WrongMint")
    # The escrow vault as the GRID destination.
    vault = trading.vault_address(TRADING_ID, order_key)[0]
    assert_refused(await chain.send_transaction([with_account(buy, 4, AccountMeta(vault, False, True))], [buyer.key]),
                   "WrongTokenOwner")
    # Wrong mint: paying from a GRID account.
    assert_refused(await chain.send_transaction([with_account(buy, 5, AccountMeta(buyer.grid, False, True))],
                                                [buyer.key]), "WrongMint")
    # Paying from someone else's THBC account (its holder did not sign).
    assert_refused(await chain.send_transaction([with_account(buy, 5, AccountMeta(other.thbc, False, True))],
                                                [buyer.key]), "WrongTokenOwner")
    # Substituted seller payment account: the money would go to `other`.
    assert_refused(await chain.send_transaction([with_account(buy, 6, AccountMeta(other.thbc, False, True))],
                                                [buyer.key]), "WrongTokenOwner")
    # Substituted fee account: a THBC account, but not the market's.
    assert_refused(await chain.send_transaction([with_account(buy, 7, AccountMeta(other.thbc, False, True))],
                                                [buyer.key]), "WrongFeeAccount")
    # Substituted seller (who would receive the vault rent).
    assert_refused(await chain.send_transaction([with_account(buy, 8, AccountMeta(other.pubkey, False, True))],
                                                [buyer.key]), "WrongSeller")
    # Token program impostor.
    assert_refused(await chain.send_transaction([with_account(buy, 9, AccountMeta(Pubkey.new_unique(), False, False))],
                                                [buyer.key]), "IncorrectProgramId")
    # Read-only order account.
    assert_refused(await chain.send_transaction([with_account(buy, 2, AccountMeta(order_key, False, False))],
                                                [buyer.key]), "InvalidArgument")
    # Malformed data.
    short = Instruction(TRADING_ID, bytes([trading.IX_BUY, 1]), list(buy.accounts))
    assert_refused(await chain.send_transaction([short], [buyer.key]), "InvalidInstructionData")
    assert_refused(await chain.send_transaction([Instruction(TRADING_ID, bytes(buy.data), list(buy.accounts[:5]))],
                                                [buyer.key]), "NotEnoughAccountKeys")

    after = await _balances(market, seller.grid, buyer.grid, buyer.thbc, seller.thbc, market.fee_account)
    assert after == before
    order = await market.order(seller, order_id)
    assert order is not None and (order.state, order.remaining) == (trading.OrderState.ACTIVE, 10 * KWH)


async def test_substituted_vault_is_refused(
        chain: LiteSVMChain, market: TradingSandbox, seller: Trader, buyer: Trader) -> None:
    mine = await _order(market, seller)
    theirs = await _order(market, seller, amount=KWH)
    # The vault of another order of the same seller (a real escrow vault, of the right mint).
    other_vault = trading.vault_address(TRADING_ID, trading.order_address(TRADING_ID, seller.pubkey, theirs)[0])[0]
    ix = trading.buy(TRADING_ID, buyer.pubkey, seller.pubkey, mine, KWH, buyer_grid=buyer.grid,
                     buyer_thbc=buyer.thbc, seller_thbc=seller.thbc, fee_account=market.fee_account,
                     vault=other_vault)
    assert_refused(await chain.send_transaction([ix], [buyer.key]), "WrongVault")
    # The buyer's own GRID account posing as the vault.
    ix = with_account(ix, 3, AccountMeta(buyer.grid, False, True))
    assert_refused(await chain.send_transaction([ix], [buyer.key]), "WrongVault")


async def test_expired_cancelled_and_filled_orders_cannot_be_bought(
        chain: LiteSVMChain, market: TradingSandbox, seller: Trader, buyer: Trader) -> None:
    expiring = await _order(market, seller, amount=KWH, expires_in=60)
    cancelled = await _order(market, seller, amount=KWH)
    filled = await _order(market, seller, amount=KWH)
    cancel = trading.cancel_order(TRADING_ID, seller.pubkey, cancelled, seller.grid)
    (await chain.send_transaction([cancel], [seller.key])).raise_for_failure()
    (await chain.send_transaction([market.buy_ix(buyer, seller, filled, KWH)], [buyer.key])).raise_for_failure()

    # The vaults of cancelled and filled orders are closed; pass the (now empty) address anyway.
    assert_refused(await chain.send_transaction([market.buy_ix(buyer, seller, cancelled, 1)], [buyer.key]),
                   "OrderNotActive")
    assert_refused(await chain.send_transaction([market.buy_ix(buyer, seller, filled, 1)], [buyer.key]),
                   "OrderNotActive")
    (await chain.send_transaction([market.buy_ix(buyer, seller, expiring, 1)], [buyer.key])).raise_for_failure()
    set_unix_time(chain, NOW + 60)  # expires_at itself is already too late
    assert_refused(await chain.send_transaction([market.buy_ix(buyer, seller, expiring, 1)], [buyer.key]),
                   "OrderExpired")


async def test_forged_or_foreign_order_and_market_accounts_are_refused(
        chain: LiteSVMChain, market: TradingSandbox, seller: Trader, buyer: Trader) -> None:
    order_id = await _order(market, seller)
    order_key = trading.order_address(TRADING_ID, seller.pubkey, order_id)[0]
    real = await chain.get_account(order_key)
    assert real is not None
    buy = market.buy_ix(buyer, seller, order_id, KWH)

    # A program-owned copy of the order at an address that is not its PDA.
    forged = Pubkey.new_unique()
    chain.svm.set_account(forged, Account(real.lamports, bytes(real.data), TRADING_ID, False, 0))
    assert_refused(await chain.send_transaction([with_account(buy, 2, AccountMeta(forged, False, True))], [buyer.key]),
                   "InvalidSeeds")
    # The same bytes owned by another program.
    foreign = Pubkey.new_unique()
    chain.svm.set_account(foreign, Account(real.lamports, bytes(real.data), Pubkey.new_unique(), False, 0))
    assert_refused(await chain.send_transaction([with_account(buy, 2, AccountMeta(foreign, False, True))], [buyer.key]),
                   "InvalidAccountOwner")
    # A second "market" with a fee account of the buyer's choosing.
    market_key = trading.market_address(TRADING_ID)[0]
    real_market = await chain.get_account(market_key)
    assert real_market is not None
    data = bytearray(real_market.data)
    data[103:135] = bytes(buyer.thbc)
    fake_market = Pubkey.new_unique()
    chain.svm.set_account(fake_market, Account(real_market.lamports, bytes(data), TRADING_ID, False, 0))
    ix = with_account(buy, 1, AccountMeta(fake_market, False, False))
    ix = with_account(ix, 7, AccountMeta(buyer.thbc, False, True))
    # Refused by the market loader: a market is only ever at the canonical PDA ["market"].
    assert_refused(await chain.send_transaction([ix], [buyer.key]), "InvalidSeeds")
    # A market account that is an order (wrong discriminator / size).
    assert_refused(await chain.send_transaction([with_account(buy, 1, AccountMeta(order_key, False, False))],
                                                [buyer.key]), "WrongAccountSize")
