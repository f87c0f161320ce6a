"""Compute units per registry instruction, measured in LiteSVM on the committed programs/registry/registry.so.

    python bench/cu_registry.py          # prints the table
    await measure()  # {"register_user": 3883, ...}; bench/bench_compute_units.py runs them all

Each figure is the whole transaction's consumption for one top-level instruction (System program CPIs
included). Program ids are fixed so that the PDA bump search in Initialize (for the ProgramData address)
costs the same on every run. RecordSettlement is measured as called directly by a key standing in for
the settlement authority; bench/cu_energy_token.py measures it inside the real settlement.
"""

from __future__ import annotations

import asyncio

from solders.keypair import Keypair

from programs.client import LiteSVMChain, TxResult, program_so
from programs.client.deploy import add_program_with_authority
from programs.registry import client as registry

__all__ = ["measure", "table"]

REGISTRY_ID = Keypair.from_seed(bytes([0xB1]) * 32).pubkey()


def _units(result: TxResult) -> int:
    result.raise_for_failure()
    return result.compute_units


async def measure() -> dict[str, int]:
    chain = LiteSVMChain()
    admin, settler, owner = (Keypair.from_seed(bytes([n]) * 32) for n in (1, 2, 3))
    for key in (admin, settler, owner):
        await chain.fund(key.pubkey(), 10 * 10**9)
    add_program_with_authority(chain, REGISTRY_ID, program_so("registry"), admin.pubkey())
    send = chain.send_transaction
    cu = {
        "initialize": _units(await send([registry.initialize(REGISTRY_ID, admin.pubkey(), settler.pubkey())], [admin]))
    }
    ix = registry.register_user(REGISTRY_ID, owner.pubkey(), registry.UserKind.PROSUMER)
    cu["register_user"] = _units(await send([ix], [owner]))
    ix = registry.register_meter(REGISTRY_ID, owner.pubkey(), "SDM630-000042", bytes(32))
    cu["register_meter"] = _units(await send([ix], [owner]))
    meter = registry.meter_address(REGISTRY_ID, "SDM630-000042")[0]
    ix = registry.set_meter_status(REGISTRY_ID, admin.pubkey(), meter, registry.MeterStatus.ACTIVE)
    cu["set_meter_status"] = _units(await send([ix], [admin]))
    ix = registry.record_settlement(
        REGISTRY_ID,
        settler.pubkey(),
        meter,
        seq=1,
        timestamp_ms=1,
        import_wh=100,
        export_wh=600,
        settled_net_generation_wh=500,
    )
    cu["record_settlement (direct, baseline)"] = _units(await send([ix], [settler]))
    ix = registry.set_meter_key(REGISTRY_ID, admin.pubkey(), meter, bytes([1]) * 32)
    cu["set_meter_key"] = _units(await send([ix], [admin]))
    # A never-settled meter handed to another registered user.
    ixs = [registry.register_meter(REGISTRY_ID, owner.pubkey(), "SDM630-000043", bytes(32)),
           registry.register_user(REGISTRY_ID, settler.pubkey(), registry.UserKind.PROSUMER)]
    _units(await send(ixs[:1], [owner]))
    _units(await send(ixs[1:], [settler]))
    other = registry.meter_address(REGISTRY_ID, "SDM630-000043")[0]
    ix = registry.reassign_meter(REGISTRY_ID, admin.pubkey(), other, owner.pubkey(), settler.pubkey(), bytes([2]) * 32)
    cu["reassign_meter"] = _units(await send([ix], [admin]))
    return cu


def table(cu: dict[str, int]) -> str:
    rows = ["| registry instruction | compute units |", "|---|---:|"]
    rows += [f"| {name} | {units:,} |" for name, units in cu.items()]
    return "\n".join(rows)


if __name__ == "__main__":
    print(table(asyncio.run(measure())))
