"""Market activity on a deployed chain, as users' wallets would do it: for indexer tests, the e2e test and benches.

Every action is a real transaction signed by the acting wallet through the ``Chain`` interface (LiteSVM
in-process or JSON-RPC), built with the programs' clients.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass

from solders.keypair import Keypair
from solders.pubkey import Pubkey
from spl.token.instructions import create_associated_token_account, get_associated_token_address

from programs.certificates import client as certificates
from programs.client.chain import Chain, TxResult
from programs.deployment import Deployment
from programs.energy_token import client as energy
from programs.payments import client as payments
from programs.registry import client as registry
from programs.trading import client as trading

__all__ = ["Wallet", "certify", "chain_now", "consume_grid", "create_order", "issue_thbc", "new_wallet",
           "order_address", "redeem_thbc"]

CLOCK = Pubkey.from_string("SysvarC1ock11111111111111111111111111111111")


@dataclass
class Wallet:
    key: Keypair
    grid: Pubkey
    thbc: Pubkey

    @property
    def address(self) -> Pubkey:
        return self.key.pubkey()


async def chain_now(chain: Chain) -> int:
    """The chain's unix time, from the Clock sysvar (works on any chain)."""
    account = await chain.get_account(CLOCK)
    assert account is not None
    return int(struct.unpack_from("<q", bytes(account.data), 32)[0])


async def new_wallet(chain: Chain, d: Deployment, *, kind: int | None = None, thbc: int = 0,
                     payment_gateway: Keypair | None = None, lamports: int = 10**9) -> Wallet:
    """A funded wallet with GRID and THBC accounts; registered as a user if ``kind``; ``thbc`` base units
    issued to it by the payment operator against a fresh deposit reference."""
    key = Keypair()
    await chain.fund(key.pubkey(), lamports)
    grid = get_associated_token_address(key.pubkey(), d.grid_mint)
    thbc_account = get_associated_token_address(key.pubkey(), d.thbc_mint)
    ixs = [create_associated_token_account(key.pubkey(), key.pubkey(), d.grid_mint),
           create_associated_token_account(key.pubkey(), key.pubkey(), d.thbc_mint)]
    if kind is not None:
        ixs.insert(0, registry.register_user(d.registry, key.pubkey(), kind))
    (await chain.send_transaction(ixs, [key])).raise_for_failure()
    wallet = Wallet(key, grid, thbc_account)
    if thbc:
        assert payment_gateway is not None
        await issue_thbc(chain, d, payment_gateway, wallet, thbc)
    return wallet


async def issue_thbc(chain: Chain, d: Deployment, operator: Keypair, to: Wallet, amount: int,
                     reference: str | bytes | None = None) -> str | bytes:
    """The payment operator issues ``amount`` THBC against a deposit reference (new if not given)."""
    reference = reference or f"DEP-{uuid.uuid4().hex[:12]}"
    ix = payments.issue(d.payments, operator.pubkey(), d.thbc_mint, to.thbc, reference, amount)
    (await chain.send_transaction([ix], [operator])).raise_for_failure()
    return reference


async def redeem_thbc(chain: Chain, d: Deployment, holder: Wallet, amount: int, payout_reference: str) -> TxResult:
    ix = payments.redeem(d.payments, holder.address, d.thbc_mint, amount, payout_reference, account=holder.thbc)
    return (await chain.send_transaction([ix], [holder.key])).raise_for_failure()


async def consume_grid(chain: Chain, d: Deployment, holder: Wallet, amount: int) -> TxResult:
    ix = energy.consume(d.energy_token, holder.address, d.grid_mint, amount, account=holder.grid)
    return (await chain.send_transaction([ix], [holder.key])).raise_for_failure()


async def existing_wallet(chain: Chain, d: Deployment, key: Keypair) -> Wallet:
    """A wallet whose GRID account exists (a meter owner); its THBC account is opened here."""
    thbc_account = get_associated_token_address(key.pubkey(), d.thbc_mint)
    if await chain.get_account(thbc_account) is None:
        ix = create_associated_token_account(key.pubkey(), key.pubkey(), d.thbc_mint)
        (await chain.send_transaction([ix], [key])).raise_for_failure()
    return Wallet(key, get_associated_token_address(key.pubkey(), d.grid_mint), thbc_account)


def order_address(d: Deployment, seller: Wallet, order_id: int) -> Pubkey:
    return trading.order_address(d.trading, seller.address, order_id)[0]


async def create_order(chain: Chain, d: Deployment, seller: Wallet, order_id: int, amount: int, price: int,
                       expires_at: int) -> TxResult:
    ix = trading.create_order(d.trading, seller.address, seller.grid, d.grid_mint, order_id, amount, price,
                              expires_at, max_fee_bps=d.fee_bps)
    return (await chain.send_transaction([ix], [seller.key])).raise_for_failure()


async def buy(chain: Chain, d: Deployment, buyer: Wallet, seller: Wallet, order_id: int, amount: int) -> TxResult:
    ix = trading.buy(d.trading, buyer.address, seller.address, order_id, amount, buyer_grid=buyer.grid,
                     buyer_thbc=buyer.thbc, seller_thbc=seller.thbc, fee_account=d.fee_account)
    return (await chain.send_transaction([ix], [buyer.key])).raise_for_failure()


async def cancel(chain: Chain, d: Deployment, seller: Wallet, order_id: int) -> TxResult:
    ix = trading.cancel_order(d.trading, seller.address, order_id, seller.grid)
    return (await chain.send_transaction([ix], [seller.key])).raise_for_failure()


async def expire(chain: Chain, d: Deployment, payer: Keypair, seller: Wallet, order_id: int) -> TxResult:
    ix = trading.expire_order(d.trading, seller.address, order_id, seller.grid)
    return (await chain.send_transaction([ix], [payer])).raise_for_failure()


async def certify(chain: Chain, d: Deployment, owner: Keypair, governance: Keypair, meter: Pubkey, index: int,
                  to_wh: int, *, validate: bool = True) -> Pubkey:
    """Issue certificate ``index`` of ``meter`` up to ``to_wh`` (the meter owner), validate it (governance)."""
    ix = certificates.issue(d.certificates, owner.pubkey(), meter, index, to_wh)
    (await chain.send_transaction([ix], [owner])).raise_for_failure()
    address = certificates.certificate_address(d.certificates, meter, index)[0]
    if validate:
        ix = certificates.validate(d.certificates, governance.pubkey(), address)
        (await chain.send_transaction([ix], [governance])).raise_for_failure()
    return address
