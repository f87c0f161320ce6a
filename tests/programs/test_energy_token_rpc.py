"""Trustless settlement over JSON-RPC (RpcChain → HTTP → LiteSVMRpcServer), the code path a cluster uses:
deploy registry and energy token through the Upgradeable Loader, bootstrap, settle a signed reading, and
name a replay refused by preflight."""

from __future__ import annotations

import struct

import pytest
from nacl.signing import SigningKey
from solders.keypair import Keypair

from gridtokenx.reading import Reading, sign
from programs.client import RpcChain, deploy_upgradeable, program_so
from programs.client.litesvm_rpc import LiteSVMRpcServer
from programs.energy_token import client as energy
from programs.energy_token.bootstrap import bootstrap, register_active_meter
from programs.registry import client as registry

pytestmark = pytest.mark.chain


async def test_settle_and_replay_over_json_rpc() -> None:
    async with LiteSVMRpcServer() as server, RpcChain(server.url, poll_interval=0.02) as chain:
        admin, owner = Keypair(), Keypair()
        await chain.fund(admin.pubkey(), 20 * 10**9)
        await chain.fund(owner.pubkey(), 10**9)
        reg = (await deploy_upgradeable(chain, program_so("registry"), Keypair(), admin)).program_id
        ene = (await deploy_upgradeable(chain, program_so("energy_token"), Keypair(), admin)).program_id
        grid = await bootstrap(chain, admin, reg, ene)
        key = SigningKey(b"rpc-meter".ljust(32, b"\0"))
        meter = await register_active_meter(chain, grid, admin, owner, "SDM630-RPC", bytes(key.verify_key))

        baseline = sign(Reading("SDM630-RPC", 1, 1_764_072_000_000, 400, 400), key)
        ixs = energy.settle_transaction(ene, reg, grid.mint, owner.pubkey(), baseline, bytes(key.verify_key))
        (await chain.send_transaction(ixs, [owner])).raise_for_failure()
        signed = sign(Reading("SDM630-RPC", 2, 1_764_072_060_000, 400, 1_650), key)
        ixs = energy.settle_transaction(ene, reg, grid.mint, owner.pubkey(), signed, bytes(key.verify_key))
        result = await chain.send_transaction(ixs, [owner])
        result.raise_for_failure()
        assert 0 < result.compute_units <= 15_000
        [event] = energy.decode_events(result, ene)
        assert isinstance(event, energy.GridMinted) and event.amount == 1_250 * 10**6
        [recorded] = registry.decode_events(result, reg)  # logged inside the CPI, attributed to the registry
        assert isinstance(recorded, registry.SettlementRecorded) and recorded.seq == 2
        account = await chain.get_account(meter.grid_account)
        assert account is not None and struct.unpack_from("<Q", bytes(account.data), 64)[0] == 1_250 * 10**6
        found = await chain.get_account(meter.address)
        assert found is not None and registry.Meter.decode(bytes(found.data)).settled_net_generation_wh == 1_250

        replay = await chain.send_transaction(ixs, [owner])
        assert replay.failure is not None
        assert energy.ENERGY_TOKEN_ERRORS.name(replay.failure) == "ReplayedReading"
        assert "Program log: settle: sequence number not above the last accepted one (replay)" in replay.logs
