"""A ready trading market on any :class:`~programs.client.chain.Chain`: mints, fee account, traders.

For tests, the CU bench and demos. The market can only be initialised by the program's upgrade
authority: deploy with ``deploy_upgradeable`` (any chain), or on LiteSVM load the .so with
:func:`programs.client.deploy.add_program_with_authority`, which names an upgrade authority the way a
deploy by that key would.

The GRID mint's authority here is a plain keypair (in the system it is the energy-token program's PDA);
the THBC mint's authority is the ``gateway`` keypair, standing in for the payment gateway that issues
baht tokens against deposits (docs/programs/thbc.md). SPL Token
instructions come from solana-py's ``spl.token`` (the well-kept builders), not from hand-packed bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, create_account
from spl.token import instructions as spl
from spl.token import models as spl_models
from spl.token.constants import TOKEN_PROGRAM_ID

from programs.client.chain import Chain, TxResult
from programs.trading import client as trading

__all__ = ["MINT_LEN", "TOKEN_ACCOUNT_LEN", "Trader", "TradingSandbox", "create_mint", "create_token_account",
           "mint_to", "token_amount"]

MINT_LEN, TOKEN_ACCOUNT_LEN = 82, 165
GRID_DECIMALS, THBC_DECIMALS = 9, 6
LAMPORTS = 10 * 10**9


async def create_mint(chain: Chain, payer: Keypair, authority: Pubkey, decimals: int) -> Pubkey:
    mint = Keypair()
    ixs = [
        create_account(CreateAccountParams(from_pubkey=payer.pubkey(), to_pubkey=mint.pubkey(),
                                           lamports=await chain.minimum_balance(MINT_LEN), space=MINT_LEN,
                                           owner=TOKEN_PROGRAM_ID)),
        spl.initialize_mint2(spl_models.InitializeMint2Params(
            decimals=decimals, mint=mint.pubkey(), mint_authority=authority, program_id=TOKEN_PROGRAM_ID)),
    ]
    (await chain.send_transaction(ixs, [payer, mint])).raise_for_failure()
    return mint.pubkey()


async def create_token_account(chain: Chain, payer: Keypair, mint: Pubkey, owner: Pubkey) -> Pubkey:
    """A fresh (non-associated) token account of ``mint`` held by ``owner``."""
    account = Keypair()
    ixs = [
        create_account(CreateAccountParams(from_pubkey=payer.pubkey(), to_pubkey=account.pubkey(),
                                           lamports=await chain.minimum_balance(TOKEN_ACCOUNT_LEN),
                                           space=TOKEN_ACCOUNT_LEN, owner=TOKEN_PROGRAM_ID)),
        spl.initialize_account3(spl_models.InitializeAccount3Params(
            account=account.pubkey(), mint=mint, owner=owner, program_id=TOKEN_PROGRAM_ID)),
    ]
    (await chain.send_transaction(ixs, [payer, account])).raise_for_failure()
    return account.pubkey()


def mint_to_instruction(mint: Pubkey, destination: Pubkey, authority: Pubkey, amount: int) -> Instruction:
    return spl.mint_to(spl_models.MintToParams(
        program_id=TOKEN_PROGRAM_ID, mint=mint, dest=destination, mint_authority=authority, amount=amount))


async def mint_to(chain: Chain, payer: Keypair, mint: Pubkey, destination: Pubkey, authority: Keypair,
                  amount: int) -> None:
    ix = mint_to_instruction(mint, destination, authority.pubkey(), amount)
    signers = [payer] if payer.pubkey() == authority.pubkey() else [payer, authority]
    (await chain.send_transaction([ix], signers)).raise_for_failure()


async def token_amount(chain: Chain, account: Pubkey) -> int:
    """The balance of a token account, or 0 if it does not exist (closed)."""
    found = await chain.get_account(account)
    if found is None:
        return 0
    data = bytes(found.data)
    if found.owner != TOKEN_PROGRAM_ID or len(data) != TOKEN_ACCOUNT_LEN:
        raise ValueError(f"{account} is not an SPL token account")
    (amount,) = struct.unpack_from("<Q", data, 64)
    return int(amount)


@dataclass(frozen=True)
class Trader:
    key: Keypair
    grid: Pubkey  # GRID token account
    thbc: Pubkey  # THBC token account

    @property
    def pubkey(self) -> Pubkey:
        return self.key.pubkey()


@dataclass
class TradingSandbox:
    chain: Chain
    program_id: Pubkey
    authority: Keypair  # the program's upgrade authority: market authority, payer of set-up transactions
    grid_authority: Keypair
    gateway: Keypair  # THBC mint authority
    grid_mint: Pubkey
    thbc_mint: Pubkey
    fee_account: Pubkey
    fee_bps: int
    next_order_id: int = 1

    @classmethod
    async def create(cls, chain: Chain, program_id: Pubkey, authority: Keypair, *, fee_bps: int = 25,
                     initialize: bool = True) -> TradingSandbox:
        """Mints, a fee account held by ``authority`` (the program's upgrade authority), and (unless
        ``initialize`` is False) the market itself. ``authority`` is funded here."""
        grid_authority, gateway = Keypair(), Keypair()
        await chain.fund(authority.pubkey(), LAMPORTS)
        grid_mint = await create_mint(chain, authority, grid_authority.pubkey(), GRID_DECIMALS)
        thbc_mint = await create_mint(chain, authority, gateway.pubkey(), THBC_DECIMALS)
        fee_account = await create_token_account(chain, authority, thbc_mint, authority.pubkey())
        sandbox = cls(chain, program_id, authority, grid_authority, gateway, grid_mint, thbc_mint, fee_account,
                      fee_bps)
        if initialize:
            ix = trading.initialize_market(program_id, authority.pubkey(), grid_mint, thbc_mint, fee_account,
                                           fee_bps)
            (await chain.send_transaction([ix], [authority])).raise_for_failure()
        return sandbox

    async def trader(self, *, grid: int = 0, thbc: int = 0, key: Keypair | None = None) -> Trader:
        """A funded keypair (``key``, or a fresh one) with a GRID and a THBC account holding ``grid`` /
        ``thbc`` base units."""
        key = key or Keypair()
        await self.chain.fund(key.pubkey(), LAMPORTS)
        grid_account = await create_token_account(self.chain, key, self.grid_mint, key.pubkey())
        thbc_account = await create_token_account(self.chain, key, self.thbc_mint, key.pubkey())
        if grid:
            await mint_to(self.chain, self.authority, self.grid_mint, grid_account, self.grid_authority, grid)
        if thbc:
            await mint_to(self.chain, self.authority, self.thbc_mint, thbc_account, self.gateway, thbc)
        return Trader(key, grid_account, thbc_account)

    def create_order_ix(self, seller: Trader, amount: int, price: int, expires_at: int,
                        order_id: int | None = None, *, max_fee_bps: int | None = None) -> tuple[Instruction, int]:
        """CreateOrder with the next order id; the seller accepts at most the market's fee as the sandbox
        set it (``max_fee_bps`` overrides)."""
        if order_id is None:
            order_id = self.next_order_id
            self.next_order_id += 1
        limit = self.fee_bps if max_fee_bps is None else max_fee_bps
        ix = trading.create_order(self.program_id, seller.pubkey, seller.grid, self.grid_mint, order_id, amount,
                                  price, expires_at, max_fee_bps=limit)
        return ix, order_id

    def buy_ix(self, buyer: Trader, seller: Trader, order_id: int, amount: int) -> Instruction:
        return trading.buy(self.program_id, buyer.pubkey, seller.pubkey, order_id, amount, buyer_grid=buyer.grid,
                           buyer_thbc=buyer.thbc, seller_thbc=seller.thbc, fee_account=self.fee_account)

    def events(self, result: TxResult) -> list[trading.TradingEvent]:
        """The trading program's events in ``result``, in order."""
        return trading.decode_events(result, self.program_id)

    async def order(self, seller: Trader, order_id: int) -> trading.Order | None:
        found = await self.chain.get_account(trading.order_address(self.program_id, seller.pubkey, order_id)[0])
        return None if found is None else trading.Order.decode(bytes(found.data))

    async def market(self) -> trading.Market:
        found = await self.chain.get_account(trading.market_address(self.program_id)[0])
        if found is None:
            raise LookupError(f"no market for program {self.program_id}")
        return trading.Market.decode(bytes(found.data))
