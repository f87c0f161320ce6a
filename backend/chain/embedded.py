"""An embedded chain with every GridTokenX program deployed and initialised, for the demo and tests.

LiteSVM only: the committed .so files are loaded with ``admin`` as their upgrade authority (the state a
deploy by that key leaves, programs.client.deploy.add_program_with_authority), then the usual bootstrap
runs — registry + energy token + GRID mint (programs.energy_token.bootstrap), a THBC mint whose authority
is the payments program's PDA with a "payment gateway" key as its payment operator
(programs.payments.client.bootstrap: THBC exists only through Issue, one per deposit reference), the
trading market (fee to a THBC account held by ``admin``) and the certificates config. A cluster deploys
with programs.client.deploy.deploy_upgradeable and the same bootstrap calls.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from solders.keypair import Keypair
from solders.pubkey import Pubkey

from programs.certificates import client as certificates
from programs.client.artifacts import program_so
from programs.client.chain import LiteSVMChain
from programs.client.deploy import add_program_with_authority
from programs.energy_token.bootstrap import GridDeployment, bootstrap
from programs.payments import client as payments
from programs.trading import client as trading
from programs.trading.sandbox import create_token_account

__all__ = ["ADMIN_LAMPORTS", "EmbeddedDeployment", "ProgramIds", "embedded_deployment", "set_unix_time"]

ADMIN_LAMPORTS = 100 * 10**9  # rent for every config, mint and account the set-up creates, with room to spare
GATEWAY_LAMPORTS = 10**9  # the payment operator pays each deposit record's rent and its fees
DEFAULT_FEE_BPS = 25


@dataclass(frozen=True)
class ProgramIds:
    registry: Pubkey
    energy_token: Pubkey
    trading: Pubkey
    certificates: Pubkey
    payments: Pubkey

    @classmethod
    def fresh(cls) -> ProgramIds:
        return cls(*(Keypair().pubkey() for _ in range(5)))

    def by_name(self) -> dict[str, Pubkey]:
        """{program name: id}, as programs.events.decode_transaction_events takes it."""
        return {"registry": self.registry, "energy_token": self.energy_token, "trading": self.trading,
                "certificates": self.certificates, "payments": self.payments}


@dataclass(frozen=True)
class EmbeddedDeployment:
    """Where everything is. ``payment_gateway`` is the payments program's operator (it issues baht tokens
    against deposits through Issue; THBC's mint authority is the payments PDA); ``admin`` is every
    program's upgrade authority, the registry and certificates governance, the market authority and the
    payments config authority, and holds the market's fee account."""

    programs: ProgramIds
    grid: GridDeployment
    admin: Pubkey
    thbc_mint: Pubkey
    payment_gateway: Keypair
    fee_account: Pubkey
    fee_bps: int

    @property
    def market(self) -> Pubkey:
        return trading.market_address(self.programs.trading)[0]


def set_unix_time(chain: LiteSVMChain, unix_timestamp: int) -> None:
    """Move the Clock sysvar's unix_timestamp (order expiry and trade events are read from it)."""
    clock = chain.svm.get_clock()
    clock.unix_timestamp = unix_timestamp
    chain.svm.set_clock(clock)


async def embedded_deployment(
    chain: LiteSVMChain,
    admin: Keypair,
    *,
    programs: ProgramIds | None = None,
    fee_bps: int = DEFAULT_FEE_BPS,
    unix_time: int | None = None,
) -> EmbeddedDeployment:
    """Load and initialise registry, energy token, trading and certificates on ``chain``; ``admin`` is
    funded here. The chain's clock is set to ``unix_time`` (default: now)."""
    ids = programs or ProgramIds.fresh()
    set_unix_time(chain, int(time.time()) if unix_time is None else unix_time)
    await chain.fund(admin.pubkey(), ADMIN_LAMPORTS)
    for name, program_id in ids.by_name().items():
        add_program_with_authority(chain, program_id, program_so(name), admin.pubkey())

    grid = await bootstrap(chain, admin, ids.registry, ids.energy_token)
    payment_gateway = Keypair()
    await chain.fund(payment_gateway.pubkey(), GATEWAY_LAMPORTS)
    thbc_mint = (await payments.bootstrap(chain, admin, ids.payments, payment_gateway.pubkey())).mint
    fee_account = await create_token_account(chain, admin, thbc_mint, admin.pubkey())
    market = trading.initialize_market(ids.trading, admin.pubkey(), grid.mint, thbc_mint, fee_account, fee_bps)
    certs = certificates.initialize(ids.certificates, admin.pubkey(), admin.pubkey(), ids.registry)
    (await chain.send_transaction([market, certs], [admin])).raise_for_failure()
    return EmbeddedDeployment(ids, grid, admin.pubkey(), thbc_mint, payment_gateway, fee_account, fee_bps)
