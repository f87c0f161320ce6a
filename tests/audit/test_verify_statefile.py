"""`gridtokenx verify --chain DIR`: the embedded chain's state file (chain.db) audited as a cluster would be —
the market of audit_world.py built over the backend's localnet on a persistent chain, then read from the file
alone; a hand-edited row in it is named. Closed accounts (filled and cancelled orders' vaults) are gone from
the file: a restart must not bring their GRID back."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import struct
import sys
from pathlib import Path

import pytest
from audit_world import build_world
from solders.pubkey import Pubkey

from audit.statefile import StateFileSource
from audit.verify import Programs, audit
from backend.chain.localnet import LocalnetServer
from backend.chain.persistent import PersistentLiteSVMChain
from programs.trading import client as trading

pytestmark = pytest.mark.chain
ROOT = Path(__file__).resolve().parents[2]


async def test_the_state_file_is_audited_and_a_hand_edited_escrow_is_named(tmp_path: Path) -> None:
    directory = tmp_path / "chain"
    chain = PersistentLiteSVMChain(directory, blockhash_check=False, slot_per_transaction=False)
    try:
        async with LocalnetServer(chain) as server:
            world = await build_world(server)
            await world.chain.__aexit__(None, None, None)
    finally:
        chain.close()
    world.deployment_file(directory)  # beside chain.db, where `verify --chain DIR` looks for it
    programs = Programs.from_mapping({name: str(pid) for name, pid in world.ids.items()})
    source = StateFileSource(directory)
    try:
        report = await asyncio.to_thread(audit, source, programs)
    finally:
        source.close()
    assert report.ok, report.text()
    assert (report.figures["settlements"], report.figures["open_orders"]) == (7, 1)

    vaults = {label: trading.vault_address(world.ids["trading"], order)[0] for label, order in world.orders.items()}
    with sqlite3.connect(directory / "chain.db") as db:
        def row(key: Pubkey) -> tuple[int, bytes] | None:
            found = db.execute("SELECT lamports, data FROM accounts WHERE pubkey = ?", (bytes(key),)).fetchone()
            return None if found is None else (int(found[0]), bytes(found[1]))

        for closed in ("order-1", "order-2", "order-4"):  # filled, cancelled, expired: their vaults are closed
            assert row(vaults[closed]) is None, closed
        _, data = row(vaults["order-3"]) or (0, b"")
        assert struct.unpack_from("<Q", data, 64)[0] == 900_000_000
        db.execute("UPDATE accounts SET data = ? WHERE pubkey = ?",
                   (data[:64] + struct.pack("<Q", 1) + data[72:], bytes(vaults["order-3"])))

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "firmware-sim")])}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gridtokenx", "verify", "--chain", str(directory), "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1, err.decode()
    result = json.loads(out)
    assert [(d["check"], d["account"]) for d in result["discrepancies"]] == [("escrow", str(vaults["order-3"]))]
    assert "vault holds 1 GRID base units, the order's remaining is 900000000" in result["discrepancies"][0]["message"]
