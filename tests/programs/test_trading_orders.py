"""trading CreateOrder / CancelOrder / ExpireOrder / CloseOrder in LiteSVM: escrow in and out, refusals."""

from __future__ import annotations

import pytest
from program_testkit import (
    TRADING_ID,
    invalid_bump,
    refused_by,
    set_unix_time,
    trading_chain,
    with_account,
    without_signature,
)
from solders.account import Account
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from spl.token import instructions as spl
from spl.token import models as spl_models
from spl.token.constants import TOKEN_PROGRAM_ID

from programs.client import LiteSVMChain
from programs.trading import client as trading
from programs.trading.sandbox import Trader, TradingSandbox, create_token_account, token_amount

pytestmark = pytest.mark.chain

NOW = 1_764_000_000
KWH = trading.GRID_PER_KWH
BAHT = 10**6
PRICE = 3_500_000


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


def _create(market: TradingSandbox, seller: Trader, order_id: int, amount: int = 5 * KWH, price: int = PRICE,
            expires_at: int = NOW + 900, **overrides: object) -> Instruction:
    overrides.setdefault("max_fee_bps", market.fee_bps)
    return trading.create_order(TRADING_ID, seller.pubkey, seller.grid, market.grid_mint, order_id, amount, price,
                                expires_at, **overrides)  # type: ignore[arg-type]


async def _created(market: TradingSandbox, seller: Trader, order_id: int = 7, amount: int = 5 * KWH,
                   expires_at: int = NOW + 900) -> tuple[Pubkey, Pubkey]:
    ix = _create(market, seller, order_id, amount, expires_at=expires_at)
    (await market.chain.send_transaction([ix], [seller.key])).raise_for_failure()
    order = trading.order_address(TRADING_ID, seller.pubkey, order_id)[0]
    return order, trading.vault_address(TRADING_ID, order)[0]


async def test_create_order_moves_grid_into_a_vault_held_by_the_order(
        chain: LiteSVMChain, market: TradingSandbox, seller: Trader) -> None:
    order_key, order_bump = trading.order_address(TRADING_ID, seller.pubkey, 7)
    vault, vault_bump = trading.vault_address(TRADING_ID, order_key)
    result = await chain.send_transaction([_create(market, seller, 7)], [seller.key])
    result.raise_for_failure()
    assert market.events(result) == [trading.OrderCreated(
        order_key, trading.market_address(TRADING_ID)[0], seller.pubkey, vault, seller.grid, 7, 5 * KWH, PRICE,
        NOW + 900, NOW, 25, 25)]
    order = await market.order(seller, 7)
    assert order == trading.Order(order_bump, vault_bump, trading.OrderState.ACTIVE,
                                  trading.market_address(TRADING_ID)[0], seller.pubkey, vault, 7, 5 * KWH, 5 * KWH,
                                  PRICE, NOW + 900, NOW, 0, 25)
    vault_account = await chain.get_account(vault)
    assert vault_account is not None and vault_account.owner == TOKEN_PROGRAM_ID
    data = bytes(vault_account.data)
    assert data[0:32] == bytes(market.grid_mint) and data[32:64] == bytes(order_key)  # token authority: order PDA
    assert [await token_amount(chain, a) for a in (vault, seller.grid)] == [5 * KWH, 15 * KWH]


async def test_create_order_refusals(chain: LiteSVMChain, market: TradingSandbox, seller: Trader) -> None:
    other = await market.trader(grid=KWH, thbc=BAHT)

    unsigned = with_account(_create(market, seller, 1), 0, AccountMeta(seller.pubkey, False, True))
    assert_refused(await chain.send_transaction([unsigned], [other.key]), "MissingRequiredSignature")
    assert_refused(await chain.send_transaction([_create(market, seller, 1, amount=0)], [seller.key]), "ZeroAmount")
    assert_refused(await chain.send_transaction([_create(market, seller, 1, price=0)], [seller.key]), "ZeroPrice")
    assert_refused(await chain.send_transaction([_create(market, seller, 1, expires_at=NOW)], [seller.key]),
                   "ExpiryInPast")
    assert_refused(await chain.send_transaction([_create(market, seller, 1, amount=20 * KWH + 1)], [seller.key]),
                   "InsufficientBalance")
    # amount x price / 10^9 beyond u64: 20 kWh at 10^18 THBC base units per kWh.
    assert_refused(await chain.send_transaction([_create(market, seller, 1, amount=20 * KWH, price=10**18)],
                                                [seller.key]), "CostOverflow")
    # Escrowing someone else's GRID (their account, the seller signs).
    ix = with_account(_create(market, seller, 1, amount=KWH), 4, AccountMeta(other.grid, False, True))
    assert_refused(await chain.send_transaction([ix], [seller.key]), "WrongTokenOwner")
    # Wrong mint: a THBC account as the source, or another mint passed as GRID.
    ix = with_account(_create(market, seller, 1), 4, AccountMeta(seller.thbc, False, True))
    assert_refused(await chain.send_transaction([ix], [seller.key]), "WrongMint")
    ix = with_account(_create(market, seller, 1), 5, AccountMeta(market.thbc_mint, False, False))
    assert_refused(await chain.send_transaction([ix], [seller.key]), "WrongMint")
    # Forged PDAs: an order address off its seeds, a wrong bump, a vault that is not ["vault", order].
    ix = _create(market, seller, 1, order=Pubkey.new_unique())
    assert_refused(await chain.send_transaction([ix], [seller.key]), "InvalidSeeds")
    bump = invalid_bump([b"order", bytes(seller.pubkey), (1).to_bytes(8, "little")], TRADING_ID)
    assert_refused(await chain.send_transaction([_create(market, seller, 1, order_bump=bump)], [seller.key]),
                   "InvalidSeeds")
    assert_refused(await chain.send_transaction([_create(market, seller, 1, vault=Pubkey.new_unique())],
                                                [seller.key]), "InvalidSeeds")
    # Program impostors.
    ix = with_account(_create(market, seller, 1), 6, AccountMeta(Pubkey.new_unique(), False, False))
    assert_refused(await chain.send_transaction([ix], [seller.key]), "IncorrectProgramId")
    ix = with_account(_create(market, seller, 1), 7, AccountMeta(Pubkey.new_unique(), False, False))
    assert_refused(await chain.send_transaction([ix], [seller.key]), "IncorrectProgramId")
    # The market: a program-owned copy off the PDA, and the real bytes owned by someone else.
    market_key = trading.market_address(TRADING_ID)[0]
    real = await chain.get_account(market_key)
    assert real is not None
    forged, foreign = Pubkey.new_unique(), Pubkey.new_unique()
    chain.svm.set_account(forged, Account(real.lamports, bytes(real.data), TRADING_ID, False, 0))
    chain.svm.set_account(foreign, Account(real.lamports, bytes(real.data), Pubkey.new_unique(), False, 0))
    for substitute, error in ((forged, "InvalidSeeds"), (foreign, "InvalidAccountOwner")):
        ix = with_account(_create(market, seller, 1), 1, AccountMeta(substitute, False, False))
        assert_refused(await chain.send_transaction([ix], [seller.key]), error)
    assert await market.order(seller, 1) is None
    assert await token_amount(chain, seller.grid) == 20 * KWH

    # An order id is used once per seller (while its order exists).
    await _created(market, seller, 1, amount=KWH)
    assert_refused(await chain.send_transaction([_create(market, seller, 1, amount=KWH)], [seller.key]),
                   "AccountAlreadyInitialized")


async def test_cancel_returns_the_escrow_and_closes_the_vault(
        chain: LiteSVMChain, market: TradingSandbox, seller: Trader) -> None:
    buyer = await market.trader(thbc=100 * BAHT)
    order_key, vault = await _created(market, seller)
    (await chain.send_transaction([market.buy_ix(buyer, seller, 7, 2 * KWH)], [buyer.key])).raise_for_failure()
    lamports = (await chain.get_account(seller.pubkey)).lamports  # type: ignore[union-attr]
    vault_rent = (await chain.get_account(vault)).lamports  # type: ignore[union-attr]

    result = await chain.send_transaction([trading.cancel_order(TRADING_ID, seller.pubkey, 7, seller.grid)],
                                          [seller.key])
    result.raise_for_failure()
    assert market.events(result) == [trading.OrderCancelled(order_key, seller.pubkey, seller.grid, 3 * KWH, 3 * KWH,
                                                            NOW)]
    order = await market.order(seller, 7)
    assert order is not None and order.state == trading.OrderState.CANCELLED and order.remaining == 3 * KWH
    assert await chain.get_account(vault) is None
    assert await token_amount(chain, seller.grid) == 18 * KWH
    fee = 5000  # the fee paid by the seller for this transaction
    assert (await chain.get_account(seller.pubkey)).lamports == lamports + vault_rent - fee  # type: ignore[union-attr]
    again = await chain.send_transaction([trading.cancel_order(TRADING_ID, seller.pubkey, 7, seller.grid)],
                                         [seller.key])
    assert_refused(again, "OrderNotActive")


async def test_cancel_refusals(chain: LiteSVMChain, market: TradingSandbox, seller: Trader) -> None:
    intruder = await market.trader(grid=KWH)
    await _created(market, seller, 7)
    await _created(market, seller, 8, amount=KWH)
    # Cancelling someone else's order, with the intruder's own GRID account as destination.
    ix = trading.cancel_order(TRADING_ID, seller.pubkey, 7, intruder.grid)
    ix = with_account(ix, 0, AccountMeta(intruder.pubkey, True, True))
    assert_refused(await chain.send_transaction([ix], [intruder.key]), "NotSeller")
    # The seller's key without the seller's signature.
    ix = trading.cancel_order(TRADING_ID, seller.pubkey, 7, seller.grid, seller_signs=False)
    assert_refused(await chain.send_transaction([ix], [intruder.key]), "MissingRequiredSignature")
    # The vault of the seller's other order.
    other_vault = trading.vault_address(TRADING_ID, trading.order_address(TRADING_ID, seller.pubkey, 8)[0])[0]
    ix = trading.cancel_order(TRADING_ID, seller.pubkey, 7, seller.grid, vault=other_vault)
    assert_refused(await chain.send_transaction([ix], [seller.key]), "WrongVault")
    # Escrow back into a THBC account.
    ix = trading.cancel_order(TRADING_ID, seller.pubkey, 7, seller.thbc)
    assert_refused(await chain.send_transaction([ix], [seller.key]), "WrongMint")
    order = await market.order(seller, 7)
    assert order is not None and order.state == trading.OrderState.ACTIVE


async def test_expire_is_open_to_anyone_after_expiry_and_pays_only_the_seller(
        chain: LiteSVMChain, market: TradingSandbox, seller: Trader) -> None:
    keeper = await market.trader()
    order_key, vault = await _created(market, seller, 7, expires_at=NOW + 300)
    expire = trading.expire_order(TRADING_ID, seller.pubkey, 7, seller.grid)
    assert_refused(await chain.send_transaction([expire], [keeper.key]), "OrderNotExpired")

    set_unix_time(chain, NOW + 300)
    # The keeper tries to take the escrow, or the vault rent.
    steal = trading.expire_order(TRADING_ID, seller.pubkey, 7, keeper.grid)
    assert_refused(await chain.send_transaction([steal], [keeper.key]), "WrongTokenOwner")
    steal_rent = with_account(expire, 3, AccountMeta(keeper.pubkey, False, True))
    assert_refused(await chain.send_transaction([steal_rent], [keeper.key]), "WrongSeller")

    lamports = (await chain.get_account(seller.pubkey)).lamports  # type: ignore[union-attr]
    vault_rent = (await chain.get_account(vault)).lamports  # type: ignore[union-attr]
    result = await chain.send_transaction([expire], [keeper.key])
    result.raise_for_failure()
    assert market.events(result) == [trading.OrderExpired(order_key, seller.pubkey, seller.grid, 5 * KWH, 5 * KWH,
                                                          NOW + 300)]
    order = await market.order(seller, 7)
    assert order is not None and order.state == trading.OrderState.EXPIRED
    assert await token_amount(chain, seller.grid) == 20 * KWH
    assert (await chain.get_account(seller.pubkey)).lamports == lamports + vault_rent  # type: ignore[union-attr]
    assert_refused(await chain.send_transaction([expire], [keeper.key]), "OrderNotActive")


async def test_close_order_returns_the_rent_of_finished_orders_only(
        chain: LiteSVMChain, market: TradingSandbox, seller: Trader) -> None:
    order_key, _ = await _created(market, seller, 7)
    close = trading.close_order(TRADING_ID, seller.pubkey, 7)
    assert_refused(await chain.send_transaction([close], [seller.key]), "OrderStillOpen")
    (await chain.send_transaction([trading.cancel_order(TRADING_ID, seller.pubkey, 7, seller.grid)],
                                  [seller.key])).raise_for_failure()
    intruder = Keypair()
    await chain.fund(intruder.pubkey(), 10**9)
    theft = trading.close_order(TRADING_ID, intruder.pubkey(), 7, order=order_key)
    assert_refused(await chain.send_transaction([theft], [intruder]), "NotSeller")

    lamports = (await chain.get_account(seller.pubkey)).lamports  # type: ignore[union-attr]
    rent = (await chain.get_account(order_key)).lamports  # type: ignore[union-attr]
    (await chain.send_transaction([close], [seller.key])).raise_for_failure()
    assert await chain.get_account(order_key) is None
    assert (await chain.get_account(seller.pubkey)).lamports == lamports + rent - 5000  # type: ignore[union-attr]
    # The order id is free again.
    await _created(market, seller, 7, amount=KWH)
    order = await market.order(seller, 7)
    assert order is not None and order.amount == KWH


async def test_every_signed_instruction_refuses_a_missing_signature(
        chain: LiteSVMChain, market: TradingSandbox, seller: Trader, admin: Keypair) -> None:
    """Each instruction's signer listed without its signature (a third party pays and signs instead):
    refused by name. InitializeMarket's case is in test_trading_market.py; ExpireOrder has no signer."""
    buyer = await market.trader(thbc=100 * BAHT)
    await _created(market, seller, 7)
    await _created(market, seller, 8, amount=KWH)
    (await chain.send_transaction([trading.cancel_order(TRADING_ID, seller.pubkey, 8, seller.grid)],
                                  [seller.key])).raise_for_failure()
    payer = await market.trader()
    signed = {
        "create_order": _create(market, seller, 9),
        "buy": market.buy_ix(buyer, seller, 7, KWH),
        "cancel_order": trading.cancel_order(TRADING_ID, seller.pubkey, 7, seller.grid),
        "close_order": trading.close_order(TRADING_ID, seller.pubkey, 8),
        "update_market": trading.update_market(TRADING_ID, admin.pubkey(), market.fee_account, 100),
    }
    for name, ix in signed.items():
        result = await chain.send_transaction([without_signature(ix)], [payer.key])
        assert result.failure is not None, name
        assert trading.TRADING_ERRORS.name(result.failure) == "MissingRequiredSignature", (name, result.logs[-4:])
    order = await market.order(seller, 7)
    assert order is not None and (order.state, order.remaining) == (trading.OrderState.ACTIVE, 5 * KWH)
    assert await market.order(seller, 8) is not None and await market.order(seller, 9) is None
    assert (await market.market()).fee_bps == 25


async def test_grid_sent_to_a_vault_does_not_block_closing_it(
        chain: LiteSVMChain, market: TradingSandbox, seller: Trader) -> None:
    # Anyone can transfer GRID into a vault; the last fill / cancel empties it whole so it still closes.
    donor = await market.trader(grid=KWH)
    buyer = await market.trader(thbc=100 * BAHT)
    _, vault = await _created(market, seller, 7, amount=2 * KWH)
    gift = spl.transfer(spl_models.TransferParams(program_id=TOKEN_PROGRAM_ID, source=donor.grid, dest=vault,
                                                  owner=donor.pubkey, amount=5))
    (await chain.send_transaction([gift], [donor.key])).raise_for_failure()
    (await chain.send_transaction([market.buy_ix(buyer, seller, 7, 2 * KWH)], [buyer.key])).raise_for_failure()
    assert await chain.get_account(vault) is None
    assert await token_amount(chain, buyer.grid) == 2 * KWH + 5


async def test_a_token_account_of_another_program_is_not_a_grid_account(
        chain: LiteSVMChain, market: TradingSandbox, seller: Trader) -> None:
    # The seller's real GRID account bytes, but owned by a program that is not SPL Token.
    real = await chain.get_account(seller.grid)
    assert real is not None
    fake = Pubkey.new_unique()
    chain.svm.set_account(fake, Account(real.lamports, bytes(real.data), Pubkey.new_unique(), False, 0))
    ix = with_account(_create(market, seller, 1), 4, AccountMeta(fake, False, True))
    assert_refused(await chain.send_transaction([ix], [seller.key]), "InvalidAccountOwner")
    # An initialised GRID account of the seller's that is empty: the balance check, not the Token program,
    # refuses it.
    empty = await create_token_account(chain, seller.key, market.grid_mint, seller.pubkey)
    ix = with_account(_create(market, seller, 1), 4, AccountMeta(empty, False, True))
    assert_refused(await chain.send_transaction([ix], [seller.key]), "InsufficientBalance")


async def test_lamports_sent_to_the_order_and_vault_addresses_do_not_block_the_order(
        chain: LiteSVMChain, market: TradingSandbox, seller: Trader) -> None:
    # PDA addresses are public; a transfer to them (rent-exempt for an empty account, the least the
    # runtime accepts) must not stop a seller from using an order id.
    order_key = trading.order_address(TRADING_ID, seller.pubkey, 9)[0]
    vault = trading.vault_address(TRADING_ID, order_key)[0]
    griefer = Keypair()
    await chain.fund(griefer.pubkey(), 10**9)
    lamports = await chain.minimum_balance(0)
    gifts = [transfer(TransferParams(from_pubkey=griefer.pubkey(), to_pubkey=a, lamports=lamports))
             for a in (order_key, vault)]
    (await chain.send_transaction(gifts, [griefer])).raise_for_failure()
    (await chain.send_transaction([_create(market, seller, 9)], [seller.key])).raise_for_failure()
    order = await market.order(seller, 9)
    assert order is not None and order.state == trading.OrderState.ACTIVE
    assert await token_amount(chain, vault) == 5 * KWH
    for address, size in ((order_key, trading.ORDER_LEN), (vault, 165)):
        account = await chain.get_account(address)
        assert account is not None and account.lamports == await chain.minimum_balance(size)
