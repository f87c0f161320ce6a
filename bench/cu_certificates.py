"""Compute units per certificates instruction, measured in LiteSVM on the committed .so files.

    python bench/cu_certificates.py          # prints the table
    await measure()  # {instruction: CU}; bench/bench_compute_units.py runs them all

A meter's settled generation is produced first through the real registry and energy-token programs: its
baseline reading, then one reading with 10,000 Wh more (only generation above the baseline is certified).
"Issue (first)" also creates the meter's certification mark; later issues only update it.
"""

from __future__ import annotations

import asyncio

from nacl.signing import SigningKey
from solders.clock import Clock
from solders.keypair import Keypair

from gridtokenx.reading import Reading, sign
from programs.certificates import client as certs
from programs.client import LiteSVMChain, TxResult, program_so
from programs.client.deploy import add_program_with_authority
from programs.energy_token import client as energy
from programs.energy_token.bootstrap import bootstrap, register_active_meter

__all__ = ["measure", "table"]

REGISTRY_ID = Keypair.from_seed(bytes([0xB1]) * 32).pubkey()
ENERGY_ID = Keypair.from_seed(bytes([0xB2]) * 32).pubkey()
CERTS_ID = Keypair.from_seed(bytes([0xB3]) * 32).pubkey()
NOW = 1_764_072_000


def _units(result: TxResult) -> int:
    result.raise_for_failure()
    return result.compute_units


def _set_time(chain: LiteSVMChain, unix_timestamp: int) -> None:
    c = chain.svm.get_clock()
    chain.svm.set_clock(Clock(c.slot, c.epoch_start_timestamp, c.epoch, c.leader_schedule_epoch, unix_timestamp))


async def measure() -> dict[str, int]:
    chain = LiteSVMChain()
    _set_time(chain, NOW)
    admin, owner, buyer = (Keypair.from_seed(bytes([n]) * 32) for n in (1, 3, 5))
    for key in (admin, owner, buyer):
        await chain.fund(key.pubkey(), 10 * 10**9)
    for program, name in ((REGISTRY_ID, "registry"), (ENERGY_ID, "energy_token"), (CERTS_ID, "certificates")):
        add_program_with_authority(chain, program, program_so(name), admin.pubkey())
    grid = await bootstrap(chain, admin, REGISTRY_ID, ENERGY_ID, mint=Keypair.from_seed(bytes([4]) * 32))
    meter_key = SigningKey(bytes(range(32)))
    meter = await register_active_meter(chain, grid, admin, owner, "SDM630-000042", bytes(meter_key.verify_key))
    # The baseline (the counters the meter arrived with), then 10,000 Wh generated since: certifiable.
    for seq, export_wh in ((1, 50_000), (2, 60_000)):
        signed = sign(Reading("SDM630-000042", seq, NOW * 1000 + seq, 0, export_wh), meter_key)
        _units(
            await chain.send_transaction(
                energy.settle_transaction(
                    ENERGY_ID, REGISTRY_ID, grid.mint, owner.pubkey(), signed, bytes(meter_key.verify_key)
                ),
                [owner],
            )
        )
    send = chain.send_transaction
    cert = [certs.certificate_address(CERTS_ID, meter.address, i)[0] for i in range(4)]
    cu = {
        "initialize": _units(
            await send([certs.initialize(CERTS_ID, admin.pubkey(), admin.pubkey(), REGISTRY_ID)], [admin])
        )
    }
    cu["issue (first, creates mark)"] = _units(
        await send([certs.issue(CERTS_ID, owner.pubkey(), meter.address, 0, 2_000)], [owner])
    )
    for i, to_wh in ((1, 4_000), (2, 6_000), (3, 8_000)):
        units = _units(await send([certs.issue(CERTS_ID, owner.pubkey(), meter.address, i, to_wh)], [owner]))
    cu["issue (later)"] = units
    cu["validate"] = _units(await send([certs.validate(CERTS_ID, admin.pubkey(), cert[0])], [admin]))
    _units(await send([certs.validate(CERTS_ID, admin.pubkey(), cert[1])], [admin]))
    cu["transfer"] = _units(await send([certs.transfer(CERTS_ID, owner.pubkey(), cert[1], buyer.pubkey())], [owner]))
    cu["retire"] = _units(await send([certs.retire(CERTS_ID, owner.pubkey(), cert[0])], [owner]))
    cu["revoke"] = _units(await send([certs.revoke(CERTS_ID, admin.pubkey(), cert[2], 1)], [admin]))
    _set_time(chain, NOW + certs.ONE_YEAR_SECONDS)
    cu["expire"] = _units(await send([certs.expire(CERTS_ID, cert[3])], [buyer]))
    return cu


def table(cu: dict[str, int]) -> str:
    rows = ["| certificates instruction | compute units |", "|---|---:|"]
    rows += [f"| {name} | {units:,} |" for name, units in cu.items()]
    return "\n".join(rows)


if __name__ == "__main__":
    print(table(asyncio.run(measure())))
