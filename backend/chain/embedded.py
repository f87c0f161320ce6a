"""The embedded chain: LiteSVM in the backend's process with every GridTokenX program deployed and initialised.

``open_embedded_chain(directory)`` is what ``backend run`` uses with ``[chain] url = "embedded"``: a
:class:`~backend.chain.persistent.PersistentLiteSVMChain` whose state lives in ``directory`` (by default
``<data_dir>/chain``). On first start it creates three keys there (``keys/admin.json``: upgrade authority,
registry authority, certificates governance, market authority, payments config authority;
``keys/relayer.json``: the backend's fee payer; ``keys/payment-gateway.json``: the payments program's
operator, who issues THBC against deposit references — THBC's mint authority is the payments PDA), loads
the committed programs with ``admin`` as their upgrade authority (the state a deploy by that key leaves,
programs.client.deploy.add_program_with_authority), initialises them (programs.deployment.deploy_all)
and writes ``deployment.json``. Every later start finds them again with all balances.

``embedded_deployment(chain, admin)`` does the same on any in-memory :class:`LiteSVMChain` and returns the
addresses with the payment gateway's key (tests, the demo's chain step).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from solders.keypair import Keypair
from solders.pubkey import Pubkey

from backend.chain.persistent import PersistentLiteSVMChain
from programs.client.chain import LiteSVMChain
from programs.deployment import Deployment, deploy_all, load_keypair, save_keypair
from programs.energy_token.bootstrap import GridDeployment

__all__ = [
    "ADMIN_LAMPORTS",
    "EmbeddedChain",
    "EmbeddedDeployment",
    "ProgramIds",
    "embedded_deployment",
    "open_embedded_chain",
    "set_unix_time",
]

ADMIN_LAMPORTS = 100 * 10**9  # rent for every config, mint and account the set-up creates, with room to spare
GATEWAY_LAMPORTS = 10**9  # the payment operator pays each deposit record's rent and its fees
RELAYER_LAMPORTS = 100 * 10**9  # fees for a long time: each settlement costs 5,000 lamports per signature
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
    """Where everything is, and the payment gateway's key: the payments program's operator (it issues baht
    tokens against deposits through Issue; THBC's mint authority is the payments PDA). ``admin`` is every
    program's upgrade authority, the registry and certificates governance, the market authority and the
    payments config authority, and holds the market's fee account."""

    deployment: Deployment
    payment_gateway: Keypair

    @property
    def programs(self) -> ProgramIds:
        d = self.deployment
        return ProgramIds(d.registry, d.energy_token, d.trading, d.certificates, d.payments)

    @property
    def grid(self) -> GridDeployment:
        return self.deployment.grid

    @property
    def admin(self) -> Pubkey:
        return self.deployment.admin

    @property
    def thbc_mint(self) -> Pubkey:
        return self.deployment.thbc_mint

    @property
    def fee_account(self) -> Pubkey:
        return self.deployment.fee_account

    @property
    def fee_bps(self) -> int:
        return self.deployment.fee_bps

    @property
    def market(self) -> Pubkey:
        return self.deployment.market


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
    payment_gateway: Keypair | None = None,
) -> EmbeddedDeployment:
    """Load and initialise registry, energy token, trading and certificates on ``chain``; ``admin`` is
    funded here. The chain's clock is set to ``unix_time`` (default: now)."""
    ids = programs or ProgramIds.fresh()
    if not isinstance(chain, PersistentLiteSVMChain) or unix_time is not None:
        set_unix_time(chain, int(time.time()) if unix_time is None else unix_time)
    await chain.fund(admin.pubkey(), ADMIN_LAMPORTS)
    gateway = payment_gateway or Keypair()
    await chain.fund(gateway.pubkey(), GATEWAY_LAMPORTS)
    # Program keypairs are only needed for a loader deploy; direct loading takes the ids.
    keypairs = {name: _Id(pid) for name, pid in ids.by_name().items()}
    deployment = await deploy_all(chain, admin, payment_operator=gateway.pubkey(), fee_bps=fee_bps,
                                  program_keypairs=keypairs, direct=True, cluster="embedded")  # type: ignore[arg-type]
    if isinstance(chain, PersistentLiteSVMChain):
        for pid in deployment.programs.values():
            chain.save_program(pid)
    return EmbeddedDeployment(deployment, gateway)


class _Id:
    """Stands in for a program keypair where only its address is used (direct loading)."""

    def __init__(self, pubkey: Pubkey) -> None:
        self._pubkey = pubkey

    def pubkey(self) -> Pubkey:
        return self._pubkey


@dataclass
class EmbeddedChain:
    chain: PersistentLiteSVMChain
    deployment: Deployment
    admin: Keypair
    relayer: Keypair
    payment_gateway: Keypair
    created: bool  # deployed by this call (first start)


async def open_embedded_chain(directory: Path, *, relayer: Keypair | None = None,
                              blockhash_check: bool = True, slot_per_transaction: bool = True) -> EmbeddedChain:
    """Open (or create, on first start) the embedded chain kept in ``directory``."""
    chain = PersistentLiteSVMChain(directory, blockhash_check=blockhash_check,
                                   slot_per_transaction=slot_per_transaction)
    try:
        keys = directory / "keys"
        deployment_file = directory / "deployment.json"
        created = not deployment_file.exists()
        if created:
            for name in ("admin", "relayer", "payment-gateway"):
                if not (keys / f"{name}.json").exists():
                    save_keypair(keys / f"{name}.json", Keypair())
        admin = load_keypair(keys / "admin.json")
        gateway = load_keypair(keys / "payment-gateway.json")
        relayer = relayer or load_keypair(keys / "relayer.json")
        if created:
            embedded = await embedded_deployment(chain, admin, payment_gateway=gateway)
            embedded.deployment.save(deployment_file)
        deployment = Deployment.load(deployment_file)
        if (chain.svm.get_balance(relayer.pubkey()) or 0) < RELAYER_LAMPORTS // 10:
            await chain.fund(relayer.pubkey(), RELAYER_LAMPORTS)
        return EmbeddedChain(chain, deployment, admin, relayer, gateway, created)
    except BaseException:
        chain.close()
        raise
