"""trading InitializeMarket in LiteSVM, and the program deployed through the BPF Upgradeable Loader."""

from __future__ import annotations

import pytest
from program_testkit import TRADING_ID, invalid_bump, refused_by, trading_chain, with_account
from solders.account import Account
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from programs.client import LiteSVMChain, deploy_upgradeable, program_so, programdata_address
from programs.client.deploy import add_program_with_authority
from programs.trading import client as trading
from programs.trading.sandbox import TradingSandbox, create_mint, create_token_account, token_amount

pytestmark = pytest.mark.chain

KWH = trading.GRID_PER_KWH


assert_refused = refused_by(trading.TRADING_ERRORS)


@pytest.fixture
def admin() -> Keypair:
    """The program's upgrade authority, hence the market authority."""
    return Keypair()


@pytest.fixture
async def chain(admin: Keypair) -> LiteSVMChain:
    return trading_chain(admin)


@pytest.fixture
async def bare(chain: LiteSVMChain, admin: Keypair) -> TradingSandbox:
    """Mints and a fee account, no market yet."""
    return await TradingSandbox.create(chain, TRADING_ID, admin, fee_bps=25, initialize=False)


def _init(s: TradingSandbox, fee_bps: int = 25, **overrides: object) -> Instruction:
    return trading.initialize_market(TRADING_ID, s.authority.pubkey(), s.grid_mint, s.thbc_mint, s.fee_account,
                                     fee_bps, **overrides)  # type: ignore[arg-type]


async def test_initialize_market_records_mints_fee_account_and_fee(chain: LiteSVMChain, bare: TradingSandbox) -> None:
    address, bump = trading.market_address(TRADING_ID)
    result = await chain.send_transaction([_init(bare)], [bare.authority])
    result.raise_for_failure()
    assert bare.events(result) == [trading.MarketInitialized(address, bare.authority.pubkey(), bare.grid_mint,
                                                             bare.thbc_mint, bare.fee_account, 25, 9, 6)]
    account = await chain.get_account(address)
    assert account is not None and account.owner == TRADING_ID
    assert account.lamports == await chain.minimum_balance(trading.MARKET_LEN)
    assert trading.Market.decode(bytes(account.data)) == trading.Market(
        bump, 9, 6, 25, bare.authority.pubkey(), bare.grid_mint, bare.thbc_mint, bare.fee_account)
    assert_refused(await chain.send_transaction([_init(bare)], [bare.authority]), "AccountAlreadyInitialized")


async def test_initialize_market_refusals(chain: LiteSVMChain, bare: TradingSandbox) -> None:
    auth = bare.authority
    other = Keypair()
    await chain.fund(other.pubkey(), 10**9)

    unsigned = with_account(_init(bare), 0, AccountMeta(auth.pubkey(), False, True))
    assert_refused(await chain.send_transaction([unsigned], [other]), "MissingRequiredSignature")
    assert_refused(await chain.send_transaction([_init(bare, fee_bps=10_001)], [auth]), "FeeTooHigh")
    same = trading.initialize_market(TRADING_ID, auth.pubkey(), bare.thbc_mint, bare.thbc_mint, bare.fee_account, 25)
    assert_refused(await chain.send_transaction([same], [auth]), "SameMint")
    six = await create_mint(chain, auth, auth.pubkey(), 6)
    wrong_decimals = trading.initialize_market(TRADING_ID, auth.pubkey(), six, bare.thbc_mint, bare.fee_account, 25)
    assert_refused(await chain.send_transaction([wrong_decimals], [auth]), "WrongDecimals")
    grid_fee = await create_token_account(chain, auth, bare.grid_mint, auth.pubkey())
    wrong_fee = trading.initialize_market(TRADING_ID, auth.pubkey(), bare.grid_mint, bare.thbc_mint, grid_fee, 25)
    assert_refused(await chain.send_transaction([wrong_fee], [auth]), "WrongMint")
    # A "mint" that is not owned by the Token program.
    fake_mint = Pubkey.new_unique()
    chain.svm.set_account(fake_mint, Account(10**7, bytes(82), Pubkey.new_unique(), False, 0))
    ix = trading.initialize_market(TRADING_ID, auth.pubkey(), fake_mint, bare.thbc_mint, bare.fee_account, 25)
    assert_refused(await chain.send_transaction([ix], [auth]), "InvalidAccountOwner")
    # Not the upgrade authority (a front-runner on a fresh deployment), and another program's ProgramData.
    front = trading.initialize_market(TRADING_ID, other.pubkey(), bare.grid_mint, bare.thbc_mint, bare.fee_account,
                                      25)
    assert_refused(await chain.send_transaction([front], [other]), "IncorrectAuthority")
    borrowed = Pubkey.new_unique()
    add_program_with_authority(chain, borrowed, program_so("trading"), other.pubkey())  # `other` controls this one
    ix = trading.initialize_market(TRADING_ID, other.pubkey(), bare.grid_mint, bare.thbc_mint, bare.fee_account, 25,
                                   programdata=programdata_address(borrowed))
    assert_refused(await chain.send_transaction([ix], [other]), "InvalidSeeds")
    # Forged market address, wrong bump, System program impostor.
    assert_refused(await chain.send_transaction([_init(bare, market=Pubkey.new_unique())], [auth]), "InvalidSeeds")
    # A bump that gives no program address (a valid non-canonical one: test_canonical_addresses.py).
    bump = invalid_bump([b"market"], TRADING_ID)
    assert_refused(await chain.send_transaction([_init(bare, bump=bump)], [auth]), "InvalidSeeds")
    impostor = with_account(_init(bare), 6, AccountMeta(Pubkey.new_unique(), False, False))
    assert_refused(await chain.send_transaction([impostor], [auth]), "IncorrectProgramId")
    assert_refused(await chain.send_transaction([Instruction(TRADING_ID, bytes([0, 25]), list(_init(bare).accounts))],
                                                [auth]), "InvalidInstructionData")
    assert_refused(await chain.send_transaction([Instruction(TRADING_ID, bytes([9]), [])], [auth]),
                   "UnknownInstruction")
    assert await chain.get_account(trading.market_address(TRADING_ID)[0]) is None
    # Nothing above used up the market: the real one still initialises.
    (await chain.send_transaction([_init(bare)], [auth])).raise_for_failure()


async def test_an_order_account_passed_as_the_market_has_the_wrong_type(chain: LiteSVMChain, admin: Keypair) -> None:
    market = await TradingSandbox.create(chain, TRADING_ID, admin)
    market_key = trading.market_address(TRADING_ID)[0]
    real = await chain.get_account(market_key)
    assert real is not None
    data = bytearray(real.data)
    data[0] = 2  # the order discriminator in a market-sized account
    chain.svm.set_account(market_key, Account(real.lamports, bytes(data), TRADING_ID, False, 0))
    seller = await market.trader(grid=KWH)
    ix, _ = market.create_order_ix(seller, KWH, 1, chain.svm.get_clock().unix_timestamp + 60)
    assert_refused(await chain.send_transaction([ix], [seller.key]), "WrongAccountType")


async def test_deployed_through_the_upgradeable_loader_it_trades() -> None:
    chain = LiteSVMChain()
    deployer = Keypair()
    await chain.fund(deployer.pubkey(), 20 * 10**9)
    program = Keypair()
    deployed = await deploy_upgradeable(chain, program_so("trading"), program, deployer)
    program_id = deployed.program_id

    market = await TradingSandbox.create(chain, program_id, deployer, fee_bps=25)
    seller = await market.trader(grid=2 * KWH)
    buyer = await market.trader(thbc=10 * 10**6)
    now = chain.svm.get_clock().unix_timestamp
    ix, order_id = market.create_order_ix(seller, 2 * KWH, 4_100_000, now + 900)
    (await chain.send_transaction([ix], [seller.key])).raise_for_failure()
    result = await chain.send_transaction([market.buy_ix(buyer, seller, order_id, KWH)], [buyer.key])
    result.raise_for_failure()
    [_, event] = market.events(result)
    assert isinstance(event, trading.TradeExecuted) and (event.cost, event.fee) == (4_100_000, 10_250)
    assert [await token_amount(chain, a) for a in (buyer.grid, seller.thbc, market.fee_account)] == [
        KWH, 4_100_000 - 10_250, 10_250]


async def test_update_market_changes_fee_for_later_orders_and_fee_account_for_every_buy(
        chain: LiteSVMChain, admin: Keypair) -> None:
    market = await TradingSandbox.create(chain, TRADING_ID, admin, fee_bps=25)
    seller = await market.trader(grid=3 * KWH)
    buyer = await market.trader(thbc=100 * 10**6)
    now = chain.svm.get_clock().unix_timestamp
    ix, order_id = market.create_order_ix(seller, 2 * KWH, 4_000_000, now + 900)
    (await chain.send_transaction([ix], [seller.key])).raise_for_failure()
    new_fee = await create_token_account(chain, admin, market.thbc_mint, Keypair().pubkey())
    intruder = await market.trader()

    update = trading.update_market(TRADING_ID, admin.pubkey(), new_fee, 100)
    takeover = trading.update_market(TRADING_ID, intruder.pubkey, intruder.thbc, 10_000)
    assert_refused(await chain.send_transaction([takeover], [intruder.key]), "NotMarketAuthority")
    unsigned = trading.update_market(TRADING_ID, admin.pubkey(), new_fee, 100, authority_signs=False)
    assert_refused(await chain.send_transaction([unsigned], [intruder.key]), "MissingRequiredSignature")
    too_high = trading.update_market(TRADING_ID, admin.pubkey(), new_fee, 10_001)
    assert_refused(await chain.send_transaction([too_high], [admin]), "FeeTooHigh")
    grid_account = trading.update_market(TRADING_ID, admin.pubkey(), seller.grid, 100)
    assert_refused(await chain.send_transaction([grid_account], [admin]), "WrongMint")
    assert (await market.market()).fee_account == market.fee_account

    (await chain.send_transaction([update], [admin])).raise_for_failure()
    updated = await market.market()
    assert (updated.fee_bps, updated.fee_account) == (100, new_fee)
    # The old fee account is refused now; the new one gets the fee of the next trade. The open order was
    # created under 25 bps and keeps them: 0.25 % of 4 THBC.
    assert_refused(await chain.send_transaction([market.buy_ix(buyer, seller, order_id, KWH)], [buyer.key]),
                   "WrongFeeAccount")
    market.fee_account = new_fee
    (await chain.send_transaction([market.buy_ix(buyer, seller, order_id, KWH)], [buyer.key])).raise_for_failure()
    assert await token_amount(chain, new_fee) == 10_000
    # An order created after the update carries the new fee (the seller accepted up to 1 %): 1 % of 4 THBC.
    ix, later = market.create_order_ix(seller, KWH, 4_000_000, now + 900, max_fee_bps=100)
    (await chain.send_transaction([ix], [seller.key])).raise_for_failure()
    assert (await market.order(seller, later)).fee_bps == 100  # type: ignore[union-attr]
    (await chain.send_transaction([market.buy_ix(buyer, seller, later, KWH)], [buyer.key])).raise_for_failure()
    assert await token_amount(chain, new_fee) == 10_000 + 40_000
