"""`gridtokenx verify` on a real market, then on records someone tampered with: it must name each change.

The market (tests/audit/audit_world.py) is built through the programs' own instructions over JSON-RPC. What
the programs refuse to do is then simulated the only way it could happen — by writing raw accounts into
LiteSVM (``set_account``), by editing the RPC server's record of a transaction, or by editing the backend's
database — and the audit, which sees only the JSON-RPC API and the database, must report it with the
transaction and the account concerned.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from audit_world import GATEWAY_KEY, NEW_KEY, AuditWorld, build_world
from nacl.signing import SigningKey
from solders.account import Account
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from audit.source import RpcSource
from audit.verify import Programs, Report, audit
from gridtokenx.reading import SignatureError
from gridtokenx.reading import verify as verify_reading
from programs.certificates import client as certificates
from programs.client.litesvm_rpc import LiteSVMRpcServer
from programs.registry import client as registry
from programs.trading import client as trading

pytestmark = pytest.mark.chain
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def world() -> AsyncIterator[AuditWorld]:
    async with LiteSVMRpcServer() as server:
        built = await build_world(server)
        try:
            yield built
        finally:
            await built.chain.__aexit__(None, None, None)


async def verify(world: AuditWorld, **databases: str) -> Report:
    """The audit in a thread (it speaks blocking HTTP to the server running on this loop)."""
    source = RpcSource(world.url)
    try:
        programs = Programs.from_mapping({name: str(pid) for name, pid in world.ids.items()})
        return await asyncio.to_thread(audit, source, programs, **databases)
    finally:
        source.close()


def named(report: Report, check: str, *words: str) -> list[str]:
    """The discrepancy lines of ``check`` that contain every one of ``words``."""
    return [d.line() for d in report.discrepancies if d.check == check and all(w in d.line() for w in words)]


def edit_account(world: AuditWorld, address: Pubkey, edit: bytes | None = None, *, owner: Pubkey | None = None,
                 data: bytes | None = None) -> None:
    svm = world.server.svm
    found = svm.get_account(address)
    lamports = found.lamports if found is not None else svm.minimum_balance_for_rent_exemption(len(data or b""))
    new_owner = owner or (found.owner if found is not None else None)
    assert new_owner is not None and (data is not None or found is not None)
    svm.set_account(address, Account(lamports, data if data is not None else bytes(found.data),  # type: ignore[union-attr]
                                     new_owner, False, 0))


# --- the untouched market -------------------------------------------------------------------------------

async def test_an_honest_market_verifies_with_every_figure(world: AuditWorld) -> None:
    report = await verify(world)
    assert report.ok, report.text()
    f = report.figures
    # pv-roof: +6,000 then +1,100 Wh; pv-barn: +4,000 then +2,500 Wh (after its key rotation).
    assert f["grid_recomputed"] == f["grid_minted"] == 13_600 * 10**6
    assert f["grid_supply"] + f["grid_consumed"] == 13_600 * 10**6 and f["grid_consumed"] == 250_000_000
    assert (f["settlements"], f["baselines"], f["meters"], f["meter_accounts"]) == (7, 2, 2, 2)
    assert (f["certificates"], f["certified_wh"]) == (2, 6_000)
    assert (f["open_orders"], f["escrow"]) == (1, 900_000_000)  # order 3: 1 kWh, 0.1 bought
    assert (f["thbc_issued"], f["thbc_redeemed"], f["thbc_supply"]) == (150 * 10**6, 20 * 10**6, 130 * 10**6)
    assert report.skipped == []


async def test_the_command_prints_a_verdict_and_json(world: AuditWorld, tmp_path: Path) -> None:
    deployment = world.deployment_file(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "firmware-sim")])}
    for extra, expect in (([], "verify: OK"), (["--json"], '"ok": true')):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gridtokenx", "verify", "--chain", world.url, "--deployment", str(deployment),
            *extra, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode() + out.decode()
        assert expect in out.decode()
    # Drained escrow: exit 1 and the discrepancy in the JSON with its account.
    order = world.orders["order-3"]
    vault = trading.vault_address(world.ids["trading"], order)[0]
    data = bytearray(world.server.svm.get_account(vault).data)  # type: ignore[union-attr]
    data[64:72] = struct.pack("<Q", 0)
    edit_account(world, vault, data=bytes(data))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gridtokenx", "verify", "--chain", world.url, "--deployment", str(deployment), "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1, err.decode()
    result = json.loads(out)
    assert result["ok"] is False
    assert {(d["check"], d["account"]) for d in result["discrepancies"]} == {("escrow", str(vault))}


async def test_an_unreachable_chain_is_no_verdict(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "firmware-sim")])}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gridtokenx", "verify", "--chain", "http://127.0.0.1:9", "--program",
        f"energy_token={Pubkey.new_unique()}", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2 and b"cannot audit" in err, (out, err)


# --- the chain's accounts, edited by hand -------------------------------------------------------------

async def test_a_second_meter_account_for_one_id_is_named(world: AuditWorld) -> None:
    program = world.ids["registry"]
    meter = world.meters["pv-roof"][1].address
    seeds = [b"meter", registry.meter_id_bytes("pv-roof")]
    canonical_bump = Pubkey.find_program_address(seeds, program)[1]
    # The same id at another valid bump: what an old registry without the canonical check could have created.
    for bump in range(canonical_bump - 1, -1, -1):
        try:
            twin = Pubkey.create_program_address([*seeds, bytes([bump])], program)
            break
        except Exception:  # on the curve: not a PDA
            continue
    data = bytearray(world.server.svm.get_account(meter).data)  # type: ignore[union-attr]
    data[2] = bump
    edit_account(world, twin, data=bytes(data), owner=program)
    report = await verify(world)
    assert named(report, "meter-account", "pv-roof", "not the canonical address", str(twin))
    assert named(report, "meter-account", "meter id pv-roof appears in 2 accounts", str(meter), str(twin))
    assert named(report, "meter-account", "no MeterRegistered event", str(twin))
    assert {d.check for d in report.discrepancies} == {"meter-account"}


async def test_an_overlapping_certificate_is_named(world: AuditWorld) -> None:
    program = world.ids["certificates"]
    roof = world.meters["pv-roof"][1].address
    second = certificates.certificate_address(program, roof, 1)[0]
    forged, bump = certificates.certificate_address(program, roof, 2)
    data = bytearray(world.server.svm.get_account(second).data)  # type: ignore[union-attr]
    data[2] = bump
    data[72:96] = struct.pack("<QQQ", 2, 5_000, 7_500)  # index 2 over [5,000, 7,500): #1 covers [4,000, 6,000)
    edit_account(world, forged, data=bytes(data), owner=program)
    report = await verify(world)
    assert named(report, "certificate", "#2 [5000, 7500) overlaps #1 [4000, 6000)", str(forged))
    assert named(report, "certificate", "#2", "no CertificateIssued event", str(forged))
    assert named(report, "certificate", "#2 reaches 7500 Wh, beyond the 7100 Wh of settled generation")
    assert named(report, "certificate", "mark says certified up to 6000 Wh with next index 2")


async def test_escrow_drained_by_an_account_edit_is_named(world: AuditWorld) -> None:
    order = world.orders["order-3"]
    vault = trading.vault_address(world.ids["trading"], order)[0]
    data = bytearray(world.server.svm.get_account(vault).data)  # type: ignore[union-attr]
    data[64:72] = struct.pack("<Q", 100_000_000)
    edit_account(world, vault, data=bytes(data))
    report = await verify(world)
    assert named(report, "escrow", "vault holds 100000000", "remaining is 900000000", str(vault))
    assert len(report.discrepancies) == 1, report.text()


async def test_grid_and_thbc_minted_outside_the_programs_are_named(world: AuditWorld) -> None:
    for mint, extra in ((world.grid.mint, 10**9), (world.thbc_mint, 10**6)):  # 1 GRID, 1 THBC
        data = bytearray(world.server.svm.get_account(mint).data)  # type: ignore[union-attr]
        (supply,) = struct.unpack_from("<Q", data, 36)
        data[36:44] = struct.pack("<Q", supply + extra)
        edit_account(world, mint, data=bytes(data))
    report = await verify(world)
    assert named(report, "grid-supply", "GRID supply 14350000000 + consumed 250000000", "account for 13600000000")
    assert named(report, "thbc-supply", "THBC supply 131000000", "PaymentIssued 150000000 - Redeemed 20000000")


# --- the chain's record of a transaction, edited (an RPC node that lies) ----------------------------------

def _rewrite(world: AuditWorld, signature: str, old: bytes, new: bytes) -> None:
    record = world.server._executed[Signature.from_string(signature)]
    raw = bytes(record.tx)
    assert raw.count(old) == 1
    record.tx = VersionedTransaction.from_bytes(raw.replace(old, new))


async def test_a_swapped_signature_in_a_settlement_is_named(world: AuditWorld) -> None:
    (first, _), (other, _) = world.settled[2], world.settled[3]
    signature = world.settled[2][1]
    _rewrite(world, signature, first.signature, other.signature)
    report = await verify(world)
    [line] = named(report, "signature", "meter pv-roof seq 2", "does not verify")
    assert signature in line and str(world.meters["pv-roof"][1].address) in line


async def test_a_reading_signed_by_a_key_the_registry_no_longer_held_is_named(world: AuditWorld) -> None:
    # The barn's last settlement came after its key rotation; show it as signed by the old gateway key.
    reading, signature = world.settled[-1]
    assert reading.data[8:15] == b"pv-barn"
    old = GATEWAY_KEY.sign(reading.data).signature
    record = world.server._executed[Signature.from_string(signature)]
    raw = bytes(record.tx)
    new_key = raw[raw.index(reading.signature) - 32:raw.index(reading.signature)]
    _rewrite(world, signature, new_key + reading.signature, bytes(GATEWAY_KEY.verify_key) + old)
    report = await verify(world)
    assert named(report, "signature", "meter pv-barn seq 1", f"signed by key {bytes(GATEWAY_KEY.verify_key).hex()}",
                 f"registry held {new_key.hex()}", signature)
    # A key nobody registered at all:
    stranger = SigningKey(b"\x33" * 32)
    assert not named(report, "signature", bytes(stranger.verify_key).hex())


# --- the backend's database, edited -------------------------------------------------------------------------

async def _store(world: AuditWorld, url: str) -> None:
    """Store every settled reading and D7 as the backend's ingest and indexer would (through its storage)."""
    from backend.storage import open_storage
    from backend.storage.database import ReadingRow
    from backend.storage.payments import PaymentRow, insert_payment

    async with await open_storage(url) as storage:
        rows = []
        for signed, _ in world.settled:
            r = signed.reading
            try:  # the barn's replacement gateway numbers afresh: its readings are its own gateway's
                verify_reading(signed.data, signed.signature, bytes(NEW_KEY.verify_key))
                gateway = "gw-replacement"
            except SignatureError:
                gateway = "gw-audit"
            rows.append(ReadingRow(gateway, r.meter_id, r.seq, r.timestamp_ms, r.import_wh, r.export_wh,
                                   r.power_w, r.flags, signed.data, signed.signature, 0))
        await storage.insert_readings(rows)
        for n, (signature, kind, wallet, asset, amount, reference) in enumerate(world.payments):
            await insert_payment(storage, PaymentRow(signature, 0, 0, kind, wallet, asset, amount, reference, 0, n))


async def _execute(url: str, sql: str, *args: object) -> None:
    from backend.storage import open_storage

    async with await open_storage(url) as storage:
        await storage.execute(sql, *args)


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> object:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/backend.db"
        return
    from tests.support.postgres import temp_database

    with temp_database() as url:
        yield url


async def test_the_backends_database_is_checked_byte_for_byte(world: AuditWorld, database: str) -> None:
    await _store(world, database)
    report = await verify(world, readings_db=database, payments_db=database)
    assert report.ok, report.text()
    assert (report.figures["readings_checked"], report.figures["readings_missing"]) == (7, 0)

    # A changed counter in a stored reading, a swapped signature, a settled reading missing, a D7 amount.
    roof2, roof3, roof4 = world.settled[2][0], world.settled[3][0], world.settled[4][0]
    changed = roof2.data[:48] + struct.pack("<Q", roof2.reading.export_wh + 1_000) + roof2.data[56:]
    await _execute(database, "UPDATE readings SET data = $1 WHERE meter_id = 'pv-roof' AND seq = 2", changed)
    await _execute(database, "UPDATE readings SET signature = $1 WHERE meter_id = 'pv-roof' AND seq = 3",
                   roof4.signature)
    await _execute(database, "UPDATE readings SET signature = $1 WHERE meter_id = 'pv-roof' AND seq = 4",
                   roof3.signature)
    await _execute(database, "DELETE FROM readings WHERE meter_id = 'pv-barn' AND seq = 2")
    redeem = next(p for p in world.payments if p[1] == "REDEEM")
    await _execute(database, "UPDATE payments SET amount = 1 WHERE signature = $1", redeem[0])
    report = await verify(world, readings_db=database, payments_db=database)
    assert named(report, "readings", "meter pv-roof seq 2", "differs from the signed bytes", "in export_wh",
                 world.settled[2][1])
    assert named(report, "readings", "meter pv-roof seq 3", "stored signature differs", world.settled[3][1])
    assert named(report, "readings", "meter pv-roof seq 4", "stored signature differs", world.settled[4][1])
    assert named(report, "readings", "meter pv-barn seq 2", "not among the backend's stored readings",
                 world.settled[5][1])
    assert named(report, "d7", "REDEEM: the chain moved 20000000 base units, D7 records 1", redeem[0])
    assert named(report, "d7", "THBC supply 130000000, but D7 says issued 150000000 - redeemed 1")
    assert {d.check for d in report.discrepancies} == {"readings", "d7"}
    assert report.figures["readings_missing"] == 4
