"""trading InitializeMarket in LiteSVM, and the program deployed through the BPF Upgradeable Loader."""

from __future__ import annotations

import pytest
from solders.account import Account
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from programs.client import LiteSVMChain, TxResult, deploy_upgradeable, program_so
from programs.trading import client as trading
from programs.trading.sandbox import TradingSandbox, create_mint, create_token_account, token_amount

pytestmark = pytest.mark.chain

TRADING_ID = Pubkey.from_string("Trading111111111111111111111111111111111111")
KWH = trading.GRID_PER_KWH


def assert_refused(result: TxResult, name: str) -> None:
    assert result.failure is not None, f"expected {name}, but the transaction succeeded"
    assert trading.TRADING_ERRORS.name(result.failure) == name, (result.failure, result.logs[-6:])


def _replace(ix: Instruction, index: int, meta: AccountMeta) -> Instruction:
    accounts = list(ix.accounts)
    accounts[index] = meta
    return Instruction(ix.program_id, bytes(ix.data), accounts)


@pytest.fixture
async def chain() -> LiteSVMChain:
    chain = LiteSVMChain()
    chain.add_program(TRADING_ID, program_so("trading"))
    return chain


@pytest.fixture
async def bare(chain: LiteSVMChain) -> TradingSandbox:
    """Mints and a fee account, no market yet."""
    return await TradingSandbox.create(chain, TRADING_ID, fee_bps=25, initialize=False)


def _init(s: TradingSandbox, fee_bps: int = 25, **overrides: object) -> Instruction:
    return trading.initialize_market(TRADING_ID, s.authority.pubkey(), s.grid_mint, s.thbc_mint, s.fee_account,
                                     fee_bps, **overrides)  # type: ignore[arg-type]


async def test_initialize_market_records_mints_fee_account_and_fee(chain: LiteSVMChain, bare: TradingSandbox) -> None:
    address, bump = trading.market_address(TRADING_ID)
    result = await chain.send_transaction([_init(bare)], [bare.authority])
    result.raise_for_failure()
    assert "Program log: trading: market initialised" in result.logs
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

    unsigned = _replace(_init(bare), 0, AccountMeta(auth.pubkey(), False, True))
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
    # Forged market address, wrong bump, System program impostor.
    assert_refused(await chain.send_transaction([_init(bare, market=Pubkey.new_unique())], [auth]), "InvalidSeeds")
    _, bump = trading.market_address(TRADING_ID)
    assert_refused(await chain.send_transaction([_init(bare, bump=bump - 1)], [auth]), "InvalidSeeds")
    impostor = _replace(_init(bare), 5, AccountMeta(Pubkey.new_unique(), False, False))
    assert_refused(await chain.send_transaction([impostor], [auth]), "IncorrectProgramId")
    assert_refused(await chain.send_transaction([Instruction(TRADING_ID, bytes([0, 25]), list(_init(bare).accounts))],
                                                [auth]), "InvalidInstructionData")
    assert_refused(await chain.send_transaction([Instruction(TRADING_ID, bytes([9]), [])], [auth]),
                   "UnknownInstruction")
    assert await chain.get_account(trading.market_address(TRADING_ID)[0]) is None
    # Nothing above used up the market: the real one still initialises.
    (await chain.send_transaction([_init(bare)], [auth])).raise_for_failure()


async def test_an_order_account_passed_as_the_market_has_the_wrong_type(chain: LiteSVMChain) -> None:
    market = await TradingSandbox.create(chain, TRADING_ID)
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

    market = await TradingSandbox.create(chain, program_id, fee_bps=25)
    seller = await market.trader(grid=2 * KWH)
    buyer = await market.trader(thbc=10 * 10**6)
    now = chain.svm.get_clock().unix_timestamp
    ix, order_id = market.create_order_ix(seller, 2 * KWH, 4_100_000, now + 900)
    (await chain.send_transaction([ix], [seller.key])).raise_for_failure()
    result = await chain.send_transaction([market.buy_ix(buyer, seller, order_id, KWH)], [buyer.key])
    result.raise_for_failure()
    [event] = trading.decode_events(result)
    assert isinstance(event, trading.TradeExecuted) and (event.cost, event.fee) == (4_100_000, 10_250)
    assert [await token_amount(chain, a) for a in (buyer.grid, seller.thbc, market.fee_account)] == [
        KWH, 4_100_000 - 10_250, 10_250]
