"""A deployed chain with meters, and readings through the backend's real ingest path: for backend tests.

    world = await make_world()                       # LiteSVM with every program, a funded relayer
    meter = await world.meter("pv-1")                # registered to a fresh owner, keyed to GATEWAY_KEY
    await ingest(storage, reading("pv-1", 0, 0, 100), reading("pv-1", 1, 0, 900))
"""

from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass

from nacl.signing import SigningKey
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from backend.chain.embedded import EmbeddedDeployment, embedded_deployment
from backend.ingest.pipeline import Ingest
from backend.storage import Storage
from gridtokenx.batch import AckStatus, encode_batch
from gridtokenx.reading import Reading, sign
from programs.client.chain import Chain, LiteSVMChain
from programs.energy_token.bootstrap import RegisteredMeter, register_active_meter
from programs.registry import client as registry

__all__ = ["GATEWAY_ID", "GATEWAY_KEY", "T0", "World", "ingest", "make_world", "reading", "token_balance"]

GATEWAY_ID = "gw-test"
GATEWAY_KEY = SigningKey(b"\x11" * 32)
T0 = 1_764_072_000_000
_batches = itertools.count(1)


def reading(meter: str, seq: int, import_wh: int, export_wh: int, *, meter_error: bool = False) -> Reading:
    return Reading(meter, seq, T0 + seq * 1_000, import_wh, export_wh, power_w=-250, meter_error=meter_error)


async def ingest(storage: Storage, *readings: Reading, gateway: str = GATEWAY_ID,
                 key: SigningKey = GATEWAY_KEY) -> None:
    """Through the backend's real ingest path: verified, stored, acknowledged."""
    handler = Ingest(storage)
    try:
        payload = encode_batch(gateway, f"b{next(_batches)}", 1, [(r, sign(r, key)) for r in readings])
        ack = await handler.handle(gateway, payload)
    finally:
        handler.close()
    assert ack is not None and {r.status for r in ack.results} == {AckStatus.STORED}, ack


async def token_balance(chain: Chain, account: Pubkey) -> int:
    found = await chain.get_account(account)
    if found is None:
        return 0
    amount: int = struct.unpack_from("<Q", bytes(found.data), 64)[0]
    return amount


@dataclass
class World:
    chain: LiteSVMChain
    admin: Keypair
    deployment: EmbeddedDeployment
    relayer: Keypair

    async def meter(self, meter_id: str, key: bytes = bytes(GATEWAY_KEY.verify_key),
                    owner: Keypair | None = None) -> RegisteredMeter:
        owner = owner or Keypair()
        await self.chain.fund(owner.pubkey(), 10**9)
        return await register_active_meter(self.chain, self.deployment.grid, self.admin, owner, meter_id, key)

    async def grid(self, meter: RegisteredMeter) -> int:
        return await token_balance(self.chain, meter.grid_account)

    async def on_chain(self, meter_id: str) -> registry.Meter:
        found = await registry.fetch_meter(self.chain, self.deployment.grid.registry_program, meter_id)
        assert found is not None
        return found


async def make_world(chain: LiteSVMChain | None = None) -> World:
    chain = chain or LiteSVMChain()
    admin, relayer = Keypair(), Keypair()
    deployment = await embedded_deployment(chain, admin)
    await chain.fund(relayer.pubkey(), 10**10)
    return World(chain, admin, deployment, relayer)
