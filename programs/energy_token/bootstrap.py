"""Set up the registry + energy-token pair on a chain: configs, GRID mint, and a meter ready to settle.

The same calls run on LiteSVM and over RPC (programs.client.Chain). Order matters once: the registry's
settlement authority is the energy-token program's authority PDA, and the GRID mint's authority is that
same PDA, so no key outside the programs can mint GRID or move a meter's settled mark.
"""

from __future__ import annotations

from dataclasses import dataclass

from solders.keypair import Keypair
from solders.pubkey import Pubkey
from spl.token.instructions import create_associated_token_account, get_associated_token_address

from programs.client.chain import Chain
from programs.energy_token import client as energy
from programs.registry import client as registry

__all__ = ["GridDeployment", "RegisteredMeter", "bootstrap", "register_active_meter"]

@dataclass(frozen=True)
class GridDeployment:
    registry_program: Pubkey
    energy_program: Pubkey
    mint: Pubkey
    authority: Pubkey  # energy-token PDA: GRID mint authority, registry settlement authority
    registry_authority: Pubkey  # governs meter status


async def bootstrap(chain: Chain, admin: Keypair, registry_program: Pubkey, energy_program: Pubkey, *,
                    mint: Keypair | None = None) -> GridDeployment:
    """Initialise the registry (authority = ``admin``) and the energy token with a fresh GRID mint.
    ``admin`` must be the upgrade authority of both programs."""
    mint = mint or Keypair()
    authority = energy.authority_address(energy_program)[0]
    ix = registry.initialize(registry_program, admin.pubkey(), authority)
    (await chain.send_transaction([ix], [admin])).raise_for_failure()
    lamports = await chain.minimum_balance(energy.MINT_LEN)
    ixs = energy.create_grid_mint(admin.pubkey(), mint.pubkey(), authority, lamports)
    (await chain.send_transaction(ixs, [admin, mint])).raise_for_failure()
    ix = energy.initialize(energy_program, admin.pubkey(), mint.pubkey(), registry_program)
    (await chain.send_transaction([ix], [admin])).raise_for_failure()
    return GridDeployment(registry_program, energy_program, mint.pubkey(), authority, admin.pubkey())


@dataclass(frozen=True)
class RegisteredMeter:
    meter_id: str
    address: Pubkey
    owner: Pubkey
    grid_account: Pubkey


async def register_active_meter(chain: Chain, grid: GridDeployment, governance: Keypair, owner: Keypair,
                                meter_id: str, meter_key: bytes, *,
                                kind: int = registry.UserKind.PROSUMER) -> RegisteredMeter:
    """Register ``owner`` (if not yet) and its meter, approve the meter, open the owner's GRID account."""
    program = grid.registry_program
    ixs = []
    if await chain.get_account(registry.user_address(program, owner.pubkey())[0]) is None:
        ixs.append(registry.register_user(program, owner.pubkey(), kind))
    ixs.append(registry.register_meter(program, owner.pubkey(), meter_id, meter_key))
    grid_account = get_associated_token_address(owner.pubkey(), grid.mint)
    if await chain.get_account(grid_account) is None:
        ixs.append(create_associated_token_account(owner.pubkey(), owner.pubkey(), grid.mint))
    (await chain.send_transaction(ixs, [owner])).raise_for_failure()
    address = registry.meter_address(program, meter_id)[0]
    ix = registry.set_meter_status(program, governance.pubkey(), address, registry.MeterStatus.ACTIVE)
    (await chain.send_transaction([ix], [governance])).raise_for_failure()
    return RegisteredMeter(meter_id, address, owner.pubkey(), grid_account)
