"""Compute units of the energy-token program, measured in LiteSVM on the committed .so files.

    python bench/cu_energy_token.py          # prints the table
    await measure()  # {instruction: CU}; bench/bench_compute_units.py runs them all

The settle-and-mint figure is the whole transaction: the Ed25519 precompile instruction (precompiles
consume no compute units), SettleAndMint's own checks and Instructions-sysvar scan, the registry
RecordSettlement CPI and the SPL Token MintTo CPI, both signed by the program's PDA. The target is
15,000 CU for a full trustless settlement. A meter's first reading is its baseline: it is recorded but
mints nothing, so it costs what a records-only settlement costs.
"""

from __future__ import annotations

import asyncio

from nacl.signing import SigningKey
from solders.keypair import Keypair

from gridtokenx.reading import Reading, sign
from programs.client import LiteSVMChain, TxResult, program_so
from programs.client.deploy import add_program_with_authority
from programs.energy_token import client as energy
from programs.energy_token.bootstrap import GridDeployment, register_active_meter
from programs.registry import client as registry

__all__ = ["TARGET_SETTLE_CU", "measure", "table"]

REGISTRY_ID = Keypair.from_seed(bytes([0xB1]) * 32).pubkey()
ENERGY_ID = Keypair.from_seed(bytes([0xB2]) * 32).pubkey()
TARGET_SETTLE_CU = 15_000
T0 = 1_764_072_000_000


def _units(result: TxResult) -> int:
    result.raise_for_failure()
    return result.compute_units


async def measure() -> dict[str, int]:
    chain = LiteSVMChain()
    admin, owner, mint = (Keypair.from_seed(bytes([n]) * 32) for n in (1, 3, 4))
    for key in (admin, owner):
        await chain.fund(key.pubkey(), 10 * 10**9)
    add_program_with_authority(chain, REGISTRY_ID, program_so("registry"), admin.pubkey())
    add_program_with_authority(chain, ENERGY_ID, program_so("energy_token"), admin.pubkey())
    authority = energy.authority_address(ENERGY_ID)[0]
    send = chain.send_transaction
    _units(await send([registry.initialize(REGISTRY_ID, admin.pubkey(), authority)], [admin]))
    ixs = energy.create_grid_mint(
        admin.pubkey(), mint.pubkey(), authority, await chain.minimum_balance(energy.MINT_LEN)
    )
    _units(await send(ixs, [admin, mint]))
    cu = {
        "initialize": _units(
            await send([energy.initialize(ENERGY_ID, admin.pubkey(), mint.pubkey(), REGISTRY_ID)], [admin])
        )
    }
    grid = GridDeployment(REGISTRY_ID, ENERGY_ID, mint.pubkey(), authority, admin.pubkey())
    meter_key = SigningKey(bytes(range(32)))
    await register_active_meter(chain, grid, admin, owner, "SDM630-000042", bytes(meter_key.verify_key))

    async def settle(seq: int, import_wh: int, export_wh: int, meter_id: str = "SDM630-000042") -> int:
        signed = sign(Reading(meter_id, seq, T0 + seq, import_wh, export_wh), meter_key)
        ixs = energy.settle_transaction(
            ENERGY_ID, REGISTRY_ID, mint.pubkey(), owner.pubkey(), signed, bytes(meter_key.verify_key)
        )
        return _units(await send(ixs, [owner]))

    # The meter's first reading is its baseline (nothing minted); the next ones mint what is new.
    cu["settle_and_mint (first reading: baseline, records only)"] = await settle(1, 1_000, 4_500)
    cu["settle_and_mint (later reading, mints)"] = await settle(2, 1_100, 5_000)
    cu["settle_and_mint (net below mark, records only)"] = await settle(3, 3_000, 5_000)
    # The meter above sits at canonical bump 255, the cheapest case of the canonical-PDA check; each valid
    # bump above a meter's canonical one costs ~340 CU more. A meter three bumps down (1 in 16 meters is
    # at least that far):
    far = _meter_id_with_bump_below_255(3)
    await register_active_meter(chain, grid, admin, owner, far, bytes(meter_key.verify_key))
    await settle(1, 1_000, 4_500, far)
    cu["settle_and_mint (mints; meter's canonical bump 255 - 3)"] = await settle(2, 1_100, 5_000, far)
    # The owner burns GRID it consumed.
    ix = energy.consume(ENERGY_ID, owner.pubkey(), mint.pubkey(), 100 * energy.BASE_UNITS_PER_WH)
    cu["consume"] = _units(await send([ix], [owner]))
    return cu


def _meter_id_with_bump_below_255(steps: int) -> str:
    """The first meter id SDM630-nnnnnn whose canonical PDA bump under REGISTRY_ID is 255 - steps."""
    n = 0
    while True:
        meter_id = f"SDM630-{n:06d}"
        if registry.meter_address(REGISTRY_ID, meter_id)[1] == 255 - steps:
            return meter_id
        n += 1


def table(cu: dict[str, int]) -> str:
    rows = ["| energy_token instruction | compute units |", "|---|---:|"]
    rows += [f"| {name} | {units:,} |" for name, units in cu.items()]
    return "\n".join(rows)


if __name__ == "__main__":
    print(table(asyncio.run(measure())))
