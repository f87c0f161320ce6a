"""The registry program in LiteSVM: every instruction's success path and each refusal, by error name."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from program_testkit import funded, invalid_bump, refused_by, without_signature
from solders.account import Account
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from programs.client import LiteSVMChain, TxResult, program_so
from programs.client.deploy import add_program_with_authority
from programs.registry import client as registry
from programs.registry.client import REGISTRY_ERRORS, MeterStatus, UserKind

pytestmark = pytest.mark.chain

REGISTRY_ID = Keypair.from_seed(bytes([0x51]) * 32).pubkey()
METER_KEY = bytes(range(32))


_refused = refused_by(REGISTRY_ERRORS)


@dataclass
class World:
    chain: LiteSVMChain
    admin: Keypair  # upgrade authority and registry authority
    settler: Keypair  # stands in for the energy-token PDA, to exercise RecordSettlement directly
    owner: Keypair

    async def send(self, ix: Instruction, *signers: Keypair) -> TxResult:
        return await self.chain.send_transaction([ix], list(signers))

    async def meter(self, meter_id: str) -> registry.Meter:
        account = await self.chain.get_account(registry.meter_address(REGISTRY_ID, meter_id)[0])
        assert account is not None
        return registry.Meter.decode(bytes(account.data))


@pytest.fixture
async def world() -> World:
    chain = LiteSVMChain()
    admin, settler, owner = await funded(chain), await funded(chain), await funded(chain)
    add_program_with_authority(chain, REGISTRY_ID, program_so("registry"), admin.pubkey())
    (await chain.send_transaction([registry.initialize(REGISTRY_ID, admin.pubkey(), settler.pubkey())],
                                  [admin])).raise_for_failure()
    return World(chain, admin, settler, owner)


async def _registered_meter(w: World, meter_id: str = "SDM630-000042", *, activate: bool = True) -> Pubkey:
    ixs = [registry.register_user(REGISTRY_ID, w.owner.pubkey(), UserKind.PROSUMER),
           registry.register_meter(REGISTRY_ID, w.owner.pubkey(), meter_id, METER_KEY)]
    (await w.chain.send_transaction(ixs, [w.owner])).raise_for_failure()
    address = registry.meter_address(REGISTRY_ID, meter_id)[0]
    if activate:
        ix = registry.set_meter_status(REGISTRY_ID, w.admin.pubkey(), address, MeterStatus.ACTIVE)
        (await w.send(ix, w.admin)).raise_for_failure()
    return address


# --- Initialize ---------------------------------------------------------------------------------------

async def test_initialize_stores_authority_and_settlement_authority(world: World) -> None:
    address, bump = registry.config_address(REGISTRY_ID)
    account = await world.chain.get_account(address)
    assert account is not None and account.owner == REGISTRY_ID
    config = registry.RegistryConfig.decode(bytes(account.data))
    assert config == registry.RegistryConfig(registry.VERSION, bump, world.admin.pubkey(), world.settler.pubkey())


async def test_initialize_twice_is_refused(world: World) -> None:
    result = await world.send(registry.initialize(REGISTRY_ID, world.admin.pubkey(), world.owner.pubkey()),
                              world.admin)
    _refused(result, "AlreadyRegistered")


async def test_initialize_by_anyone_but_the_upgrade_authority_is_refused() -> None:
    chain = LiteSVMChain()
    admin, intruder = await funded(chain), await funded(chain)
    add_program_with_authority(chain, REGISTRY_ID, program_so("registry"), admin.pubkey())
    result = await chain.send_transaction(
        [registry.initialize(REGISTRY_ID, intruder.pubkey(), intruder.pubkey())], [intruder])
    _refused(result, "IncorrectAuthority")
    assert "Program log: signer is not the program's upgrade authority:" in result.logs
    # Another program's ProgramData (where the intruder is the authority) is not this program's.
    other = Keypair().pubkey()
    add_program_with_authority(chain, other, program_so("registry"), intruder.pubkey())
    from programs.client.deploy import programdata_address

    ix = registry.initialize(REGISTRY_ID, intruder.pubkey(), intruder.pubkey(),
                             programdata=programdata_address(other))
    _refused(await chain.send_transaction([ix], [intruder]), "InvalidSeeds")


# --- RegisterUser -------------------------------------------------------------------------------------

async def test_register_user_creates_the_wallet_pda(world: World) -> None:
    wallet = world.owner.pubkey()
    result = await world.send(registry.register_user(REGISTRY_ID, wallet, UserKind.CONSUMER), world.owner)
    result.raise_for_failure()
    address, bump = registry.user_address(REGISTRY_ID, wallet)
    account = await world.chain.get_account(address)
    assert account is not None and account.owner == REGISTRY_ID
    user = registry.User.decode(bytes(account.data))
    assert registry.decode_events(result, REGISTRY_ID) == [
        registry.UserRegistered(wallet, address, UserKind.CONSUMER, user.registered_at)]
    assert (user.bump, user.kind, user.wallet, user.meter_count) == (bump, UserKind.CONSUMER, wallet, 0)


async def test_register_user_refusals(world: World) -> None:
    wallet = world.owner.pubkey()
    (await world.send(registry.register_user(REGISTRY_ID, wallet, UserKind.PROSUMER), world.owner)).raise_for_failure()
    _refused(await world.send(registry.register_user(REGISTRY_ID, wallet, UserKind.CONSUMER), world.owner),
             "AlreadyRegistered")
    other = await funded(world.chain)
    _refused(await world.send(registry.register_user(REGISTRY_ID, other.pubkey(), 3), other), "InvalidUserKind")
    # Someone else pays and signs; the wallet itself did not sign.
    ix = registry.register_user(REGISTRY_ID, other.pubkey(), UserKind.PROSUMER, wallet_signs=False)
    ix_result = await world.send(ix, world.owner)
    assert ix_result.failure is not None
    # A wallet that must be writable and a signer but is only listed read-only is refused by the program.
    _refused(ix_result, "MissingRequiredSignature")
    # A forged user address, and the right address with another bump.
    forged = registry.register_user(REGISTRY_ID, other.pubkey(), UserKind.PROSUMER, user=Pubkey.new_unique())
    _refused(await world.send(forged, other), "InvalidSeeds")
    # A bump that gives no program address (a valid non-canonical one: test_canonical_addresses.py).
    bump = invalid_bump([b"user", bytes(other.pubkey())], REGISTRY_ID)
    wrong_bump = registry.register_user(REGISTRY_ID, other.pubkey(), UserKind.PROSUMER, bump=bump)
    _refused(await world.send(wrong_bump, other), "InvalidSeeds")


# --- RegisterMeter ------------------------------------------------------------------------------------

async def test_register_meter_is_pending_and_counted(world: World) -> None:
    address = await _registered_meter(world, activate=False)
    meter = await world.meter("SDM630-000042")
    assert meter.status == MeterStatus.PENDING and not meter.has_reading
    assert (meter.owner, meter.meter_key, meter.meter_id) == (world.owner.pubkey(), METER_KEY, "SDM630-000042")
    assert (meter.settled_net_generation_wh, meter.settlement_count) == (0, 0)
    assert meter.bump == registry.meter_address(REGISTRY_ID, "SDM630-000042")[1]
    user = await world.chain.get_account(registry.user_address(REGISTRY_ID, world.owner.pubkey())[0])
    assert user is not None and registry.User.decode(bytes(user.data)).meter_count == 1
    assert (await world.chain.get_account(address)) is not None


async def test_duplicate_meter_registration_is_refused_even_for_another_owner(world: World) -> None:
    await _registered_meter(world, activate=False)
    rival = await funded(world.chain)
    ixs = [registry.register_user(REGISTRY_ID, rival.pubkey(), UserKind.PROSUMER),
           registry.register_meter(REGISTRY_ID, rival.pubkey(), "SDM630-000042", bytes(32))]
    result = await world.chain.send_transaction(ixs, [rival])
    assert result.failure is not None and result.failure.instruction_index == 1
    _refused(result, "AlreadyRegistered")
    assert (await world.meter("SDM630-000042")).owner == world.owner.pubkey()


async def test_register_meter_refusals(world: World) -> None:
    owner = world.owner.pubkey()
    rival = await funded(world.chain)
    # No user account yet: the System-owned address is not a registry account.
    _refused(await world.send(registry.register_meter(REGISTRY_ID, owner, "M-1", METER_KEY), world.owner),
             "InvalidAccountOwner")
    (await world.send(registry.register_user(REGISTRY_ID, owner, UserKind.PROSUMER), world.owner)).raise_for_failure()
    ix = registry.register_user(REGISTRY_ID, rival.pubkey(), UserKind.PROSUMER)
    (await world.send(ix, rival)).raise_for_failure()
    # The rival presents the owner's user account: it belongs to another wallet.
    ix = registry.register_meter(REGISTRY_ID, rival.pubkey(), "M-1", METER_KEY,
                                 user=registry.user_address(REGISTRY_ID, owner)[0])
    _refused(await world.send(ix, rival), "WrongUser")
    # A user account with the right bytes but owned by another program.
    fake_user = Pubkey.new_unique()
    user_account = await world.chain.get_account(registry.user_address(REGISTRY_ID, owner)[0])
    assert user_account is not None
    data = bytes(user_account.data)
    world.chain.svm.set_account(fake_user, Account(10**7, data, Pubkey.new_unique(), False, 0))
    ix = registry.register_meter(REGISTRY_ID, owner, "M-1", METER_KEY, user=fake_user)
    _refused(await world.send(ix, world.owner), "InvalidAccountOwner")
    # Meter ids that no reading could carry: empty, a space, a NUL before the padding.
    for bad_id in (b"", b"bad id", b"A\0B"):
        _refused(await world.send(registry.register_meter(REGISTRY_ID, owner, bad_id, METER_KEY), world.owner),
                 "InvalidMeterId")
    # Forged meter PDA (not ["meter", id]).
    ix = registry.register_meter(REGISTRY_ID, owner, "M-1", METER_KEY, meter=Pubkey.new_unique())
    _refused(await world.send(ix, world.owner), "InvalidSeeds")
    # Missing owner signature.
    ix = registry.register_meter(REGISTRY_ID, owner, "M-1", METER_KEY, owner_signs=False)
    _refused(await world.send(ix, rival), "MissingRequiredSignature")


# --- SetMeterStatus -----------------------------------------------------------------------------------

async def test_authority_moves_meter_status_and_it_is_logged(world: World) -> None:
    address = await _registered_meter(world, activate=False)
    result = await world.send(registry.set_meter_status(REGISTRY_ID, world.admin.pubkey(), address,
                                                        MeterStatus.ACTIVE), world.admin)
    result.raise_for_failure()
    assert registry.decode_events(result, REGISTRY_ID) == [registry.MeterStatusChanged(
        address, "SDM630-000042", world.owner.pubkey(), MeterStatus.PENDING, MeterStatus.ACTIVE)]
    assert (await world.meter("SDM630-000042")).status == MeterStatus.ACTIVE
    for status in (MeterStatus.SUSPENDED, MeterStatus.ACTIVE, MeterStatus.DECOMMISSIONED):
        (await world.send(registry.set_meter_status(REGISTRY_ID, world.admin.pubkey(), address, status),
                          world.admin)).raise_for_failure()
        assert (await world.meter("SDM630-000042")).status == status


async def test_unauthorised_status_change_is_refused(world: World) -> None:
    address = await _registered_meter(world, activate=False)
    # The meter's own owner is not the registry authority.
    result = await world.send(registry.set_meter_status(REGISTRY_ID, world.owner.pubkey(), address,
                                                        MeterStatus.ACTIVE), world.owner)
    _refused(result, "Unauthorised")
    # The authority's key listed without its signature.
    ix = registry.set_meter_status(REGISTRY_ID, world.admin.pubkey(), address, MeterStatus.ACTIVE,
                                   authority_signs=False)
    _refused(await world.send(ix, world.owner), "MissingRequiredSignature")
    # A look-alike config naming the owner as authority, owned by another program.
    config = await world.chain.get_account(registry.config_address(REGISTRY_ID)[0])
    assert config is not None
    data = bytearray(config.data)
    data[8:40] = bytes(world.owner.pubkey())
    fake = Pubkey.new_unique()
    world.chain.svm.set_account(fake, Account(10**7, bytes(data), Pubkey.new_unique(), False, 0))
    ix = registry.set_meter_status(REGISTRY_ID, world.owner.pubkey(), address, MeterStatus.ACTIVE, config=fake)
    _refused(await world.send(ix, world.owner), "InvalidAccountOwner")
    # A registry account of another type in the config slot.
    ix = registry.set_meter_status(REGISTRY_ID, world.owner.pubkey(), address, MeterStatus.ACTIVE,
                                   config=registry.user_address(REGISTRY_ID, world.owner.pubkey())[0])
    _refused(await world.send(ix, world.owner), "AccountWrongSize")
    assert (await world.meter("SDM630-000042")).status == MeterStatus.PENDING


async def test_invalid_status_changes_are_refused(world: World) -> None:
    address = await _registered_meter(world, activate=True)
    admin = world.admin.pubkey()
    _refused(await world.send(registry.set_meter_status(REGISTRY_ID, admin, address, 7), world.admin),
             "InvalidStatus")
    _refused(await world.send(registry.set_meter_status(REGISTRY_ID, admin, address, MeterStatus.ACTIVE),
                              world.admin), "InvalidStatus")
    (await world.send(registry.set_meter_status(REGISTRY_ID, admin, address, MeterStatus.DECOMMISSIONED),
                      world.admin)).raise_for_failure()
    _refused(await world.send(registry.set_meter_status(REGISTRY_ID, admin, address, MeterStatus.ACTIVE),
                              world.admin), "MeterDecommissioned")


async def test_every_signed_instruction_refuses_a_missing_signature(world: World) -> None:
    """Each instruction's signer listed without its signature (a third party pays and signs instead):
    refused by name, for all seven instructions."""
    address = await _registered_meter(world)
    other = await funded(world.chain)
    (await world.send(registry.register_user(REGISTRY_ID, other.pubkey(), UserKind.PROSUMER), other)
     ).raise_for_failure()
    admin, owner = world.admin.pubkey(), world.owner.pubkey()
    newcomer, payer = await funded(world.chain), await funded(world.chain)
    signed = {
        "initialize": registry.initialize(REGISTRY_ID, admin, world.settler.pubkey()),
        "register_user": registry.register_user(REGISTRY_ID, newcomer.pubkey(), UserKind.CONSUMER),
        "register_meter": registry.register_meter(REGISTRY_ID, owner, "M-2", METER_KEY),
        "set_meter_status": registry.set_meter_status(REGISTRY_ID, admin, address, MeterStatus.SUSPENDED),
        "record_settlement": _record(world, address, 1, 10, 0, 10, 10),
        "set_meter_key": registry.set_meter_key(REGISTRY_ID, admin, address, bytes(32)),
        "reassign_meter": registry.reassign_meter(REGISTRY_ID, admin, address, owner, other.pubkey(), bytes(32)),
    }
    for name, ix in signed.items():
        result = await world.send(without_signature(ix), payer)
        assert result.failure is not None, name
        assert REGISTRY_ERRORS.name(result.failure) == "MissingRequiredSignature", (name, result.logs[-4:])
    meter = await world.meter("SDM630-000042")
    assert (meter.owner, meter.status, meter.settlement_count) == (owner, MeterStatus.ACTIVE, 0)


# --- RecordSettlement ---------------------------------------------------------------------------------

def _record(w: World, address: Pubkey, seq: int, ts: int, imp: int, exp: int, settled: int,
            signer: Keypair | None = None) -> Instruction:
    return registry.record_settlement(REGISTRY_ID, (signer or w.settler).pubkey(), address, seq=seq,
                                      timestamp_ms=ts, import_wh=imp, export_wh=exp,
                                      settled_net_generation_wh=settled)


async def test_record_settlement_stores_the_reading_and_mark(world: World) -> None:
    address = await _registered_meter(world)
    before = await world.meter("SDM630-000042")
    assert (before.has_baseline, before.baseline_net_generation_wh, before.baseline_timestamp_ms) == (False, 0, 0)
    # The first reading is the baseline: the mark becomes its net generation, which is stored as such.
    (await world.send(_record(world, address, 5, 1000, 100, 400, 300), world.settler)).raise_for_failure()
    meter = await world.meter("SDM630-000042")
    assert (meter.settled_net_generation_wh, meter.baseline_net_generation_wh, meter.baseline_timestamp_ms) == (
        300, 300, 1000)
    # Net falls below the mark: the mark stays.
    (await world.send(_record(world, address, 6, 2000, 600, 450, 300), world.settler)).raise_for_failure()
    meter = await world.meter("SDM630-000042")
    assert meter.has_reading and meter.has_baseline
    assert (meter.last_seq, meter.last_timestamp_ms, meter.last_import_wh, meter.last_export_wh) == (6, 2000, 600, 450)
    assert (meter.settled_net_generation_wh, meter.settlement_count) == (300, 2)
    # Net passes the mark: the mark rises; the baseline never moves again.
    (await world.send(_record(world, address, 7, 3000, 600, 1_000, 400), world.settler)).raise_for_failure()
    meter = await world.meter("SDM630-000042")
    assert (meter.settled_net_generation_wh, meter.baseline_net_generation_wh, meter.baseline_timestamp_ms) == (
        400, 300, 1000)
    assert meter.generation_since_baseline_wh == 100


async def test_consumer_marks_may_be_negative(world: World) -> None:
    address = await _registered_meter(world)
    # A consumer's first reading (its baseline): net -500, and the mark is exactly that, not 0.
    _refused(await world.send(_record(world, address, 1, 10, 900, 400, 0), world.settler), "SettledMarkMismatch")
    (await world.send(_record(world, address, 1, 10, 900, 400, -500), world.settler)).raise_for_failure()
    meter = await world.meter("SDM630-000042")
    assert (meter.settled_net_generation_wh, meter.baseline_net_generation_wh) == (-500, -500)
    # More import: the mark never goes down.
    _refused(await world.send(_record(world, address, 2, 20, 1_100, 400, -700), world.settler),
             "SettledMarkMismatch")
    (await world.send(_record(world, address, 2, 20, 1_100, 400, -500), world.settler)).raise_for_failure()
    # Generation above the baseline raises it while the lifetime net is still negative.
    (await world.send(_record(world, address, 3, 30, 1_100, 900, -200), world.settler)).raise_for_failure()
    meter = await world.meter("SDM630-000042")
    assert (meter.settled_net_generation_wh, meter.generation_since_baseline_wh) == (-200, 300)


async def test_record_settlement_refusals(world: World) -> None:
    address = await _registered_meter(world, activate=False)
    _refused(await world.send(_record(world, address, 1, 10, 0, 10, 10), world.settler), "MeterNotActive")
    (await world.send(registry.set_meter_status(REGISTRY_ID, world.admin.pubkey(), address, MeterStatus.ACTIVE),
                      world.admin)).raise_for_failure()
    # A key the backend might hold (here the registry authority itself) is not the settlement authority.
    _refused(await world.send(_record(world, address, 1, 10, 0, 10, 10, signer=world.admin), world.admin),
             "NotSettlementAuthority")
    # A baseline's mark is its own net generation: 0 (nothing settled yet) is not it.
    _refused(await world.send(_record(world, address, 5, 500, 100, 200, 0), world.settler), "SettledMarkMismatch")
    (await world.send(_record(world, address, 5, 500, 100, 200, 100), world.settler)).raise_for_failure()
    _refused(await world.send(_record(world, address, 5, 600, 100, 300, 200), world.settler), "StaleReading")
    _refused(await world.send(_record(world, address, 4, 600, 100, 300, 200), world.settler), "StaleReading")
    _refused(await world.send(_record(world, address, 6, 500, 100, 300, 200), world.settler), "StaleReading")
    _refused(await world.send(_record(world, address, 6, 600, 99, 300, 201), world.settler), "CounterRollback")
    _refused(await world.send(_record(world, address, 6, 600, 100, 199, 100), world.settler), "CounterRollback")
    # The mark is derived from the counters, not chosen by the caller.
    _refused(await world.send(_record(world, address, 6, 600, 100, 300, 10**9), world.settler),
             "SettledMarkMismatch")
    _refused(await world.send(_record(world, address, 6, 600, 100, 300, 150), world.settler),
             "SettledMarkMismatch")
    # Counters more than 2^63 Wh apart do not fit the signed mark.
    _refused(await world.send(_record(world, address, 6, 600, 100, 2**64 - 1, 0), world.settler),
             "ArithmeticOverflow")
    meter = await world.meter("SDM630-000042")
    assert (meter.last_seq, meter.settled_net_generation_wh, meter.settlement_count) == (5, 100, 1)


async def test_unknown_instruction_and_short_data(world: World) -> None:
    _refused(await world.send(Instruction(REGISTRY_ID, bytes([9]), []), world.owner), "UnknownInstruction")
    ix = registry.register_user(REGISTRY_ID, world.owner.pubkey(), UserKind.PROSUMER)
    short = Instruction(REGISTRY_ID, bytes(ix.data)[:2], ix.accounts)
    _refused(await world.send(short, world.owner), "InvalidInstructionData")
    too_few = Instruction(REGISTRY_ID, bytes(ix.data), ix.accounts[:1])
    _refused(await world.send(too_few, world.owner), "NotEnoughAccountKeys")


async def test_a_prefunded_meter_address_cannot_block_registration(world: World) -> None:
    # Meter PDAs derive from printed ids, so anyone can send lamports there first; CreateAccount alone
    # would then fail forever. The registry tops up, allocates and assigns instead.
    address = registry.meter_address(REGISTRY_ID, "SDM630-000042")[0]
    await world.chain.fund(address, await world.chain.minimum_balance(0))
    await _registered_meter(world, activate=False)
    account = await world.chain.get_account(address)
    assert account is not None and account.owner == REGISTRY_ID
    assert account.lamports == await world.chain.minimum_balance(registry.METER_LEN)
    assert (await world.meter("SDM630-000042")).owner == world.owner.pubkey()
    # More than the rent minimum already there: nothing is transferred, the account is still created.
    wallet = await funded(world.chain)
    user = registry.user_address(REGISTRY_ID, wallet.pubkey())[0]
    await world.chain.fund(user, 10**9)
    ix = registry.register_user(REGISTRY_ID, wallet.pubkey(), UserKind.CONSUMER)
    (await world.send(ix, wallet)).raise_for_failure()
    account = await world.chain.get_account(user)
    assert account is not None and account.owner == REGISTRY_ID and account.lamports == 10**9
    assert registry.User.decode(bytes(account.data)).kind == UserKind.CONSUMER


# --- SetMeterKey --------------------------------------------------------------------------------------

async def test_set_meter_key_rotates_the_key_and_clears_the_sequence_history(world: World) -> None:
    address = await _registered_meter(world)
    (await world.send(_record(world, address, 2**40 + 5, 1000, 100, 400, 300), world.settler)).raise_for_failure()
    new_key = bytes([0xAA]) * 32
    result = await world.send(registry.set_meter_key(REGISTRY_ID, world.admin.pubkey(), address, new_key),
                              world.admin)
    result.raise_for_failure()
    assert registry.decode_events(result, REGISTRY_ID) == [registry.MeterKeyChanged(
        address, "SDM630-000042", world.owner.pubkey(), Pubkey.from_bytes(METER_KEY), Pubkey.from_bytes(new_key))]
    meter = await world.meter("SDM630-000042")
    assert (meter.meter_key, meter.has_reading) == (new_key, False)
    assert (meter.last_import_wh, meter.last_export_wh, meter.settled_net_generation_wh) == (100, 400, 300)
    # The new gateway starts at a low sequence number; counters still may not go back.
    _refused(await world.send(_record(world, address, 1, 10, 99, 400, 300), world.settler), "CounterRollback")
    # Its first reading is no new baseline: net 250 leaves the old mark (300) where it is.
    _refused(await world.send(_record(world, address, 1, 10, 200, 450, 250), world.settler), "SettledMarkMismatch")
    (await world.send(_record(world, address, 1, 10, 200, 450, 300), world.settler)).raise_for_failure()
    meter = await world.meter("SDM630-000042")
    assert (meter.settlement_count, meter.baseline_net_generation_wh, meter.baseline_timestamp_ms) == (2, 300, 1000)


async def test_set_meter_key_refusals(world: World) -> None:
    address = await _registered_meter(world)
    admin = world.admin.pubkey()
    _refused(await world.send(registry.set_meter_key(REGISTRY_ID, world.owner.pubkey(), address, bytes(32)),
                              world.owner), "Unauthorised")
    ix = registry.set_meter_key(REGISTRY_ID, admin, address, bytes(32), authority_signs=False)
    _refused(await world.send(ix, world.owner), "MissingRequiredSignature")
    _refused(await world.send(registry.set_meter_key(REGISTRY_ID, admin, address, METER_KEY), world.admin),
             "SameMeterKey")
    (await world.send(registry.set_meter_status(REGISTRY_ID, admin, address, MeterStatus.DECOMMISSIONED),
                      world.admin)).raise_for_failure()
    _refused(await world.send(registry.set_meter_key(REGISTRY_ID, admin, address, bytes(32)), world.admin),
             "MeterDecommissioned")
    assert (await world.meter("SDM630-000042")).meter_key == METER_KEY


# --- ReassignMeter ------------------------------------------------------------------------------------

async def test_a_squatted_meter_id_is_reassigned_to_its_rightful_owner(world: World) -> None:
    squatter = await funded(world.chain)
    ixs = [registry.register_user(REGISTRY_ID, squatter.pubkey(), UserKind.PROSUMER),
           registry.register_meter(REGISTRY_ID, squatter.pubkey(), "SDM630-000042", bytes(32))]
    (await world.chain.send_transaction(ixs, [squatter])).raise_for_failure()
    ix = registry.register_user(REGISTRY_ID, world.owner.pubkey(), UserKind.PROSUMER)
    (await world.send(ix, world.owner)).raise_for_failure()
    address = registry.meter_address(REGISTRY_ID, "SDM630-000042")[0]
    ix = registry.reassign_meter(REGISTRY_ID, world.admin.pubkey(), address, squatter.pubkey(),
                                 world.owner.pubkey(), METER_KEY)
    result = await world.send(ix, world.admin)
    result.raise_for_failure()
    assert registry.decode_events(result, REGISTRY_ID) == [registry.MeterReassigned(
        address, "SDM630-000042", squatter.pubkey(), world.owner.pubkey(), Pubkey.from_bytes(METER_KEY),
        MeterStatus.PENDING, MeterStatus.PENDING)]
    meter = await world.meter("SDM630-000042")
    assert (meter.owner, meter.meter_key, meter.status) == (world.owner.pubkey(), METER_KEY, MeterStatus.PENDING)
    for wallet, count in ((squatter.pubkey(), 0), (world.owner.pubkey(), 1)):
        user = await world.chain.get_account(registry.user_address(REGISTRY_ID, wallet)[0])
        assert user is not None and registry.User.decode(bytes(user.data)).meter_count == count


async def test_reassign_refusals(world: World) -> None:
    address = await _registered_meter(world)
    other = await funded(world.chain)
    ix = registry.register_user(REGISTRY_ID, other.pubkey(), UserKind.PROSUMER)
    (await world.send(ix, other)).raise_for_failure()
    owner, admin = world.owner.pubkey(), world.admin.pubkey()
    ix = registry.reassign_meter(REGISTRY_ID, owner, address, owner, other.pubkey(), bytes(32))
    _refused(await world.send(ix, world.owner), "Unauthorised")
    ix = registry.reassign_meter(REGISTRY_ID, admin, address, other.pubkey(), other.pubkey(), bytes(32))
    _refused(await world.send(ix, world.admin), "WrongUser")
    # Once a reading has been settled, the meter's marks belong to its owner: no reassignment.
    (await world.send(_record(world, address, 1, 10, 0, 10, 10), world.settler)).raise_for_failure()
    ix = registry.reassign_meter(REGISTRY_ID, admin, address, owner, other.pubkey(), bytes(32))
    _refused(await world.send(ix, world.admin), "MeterHasHistory")
    assert (await world.meter("SDM630-000042")).owner == owner


def test_error_table_mirrors_error_h() -> None:
    # The Python names are the C enum names in CamelCase, with the same numbers.
    source = (Path(__file__).resolve().parents[2] / "programs" / "registry" / "src" / "error.h").read_text()
    c_errors = {int(n): "".join(w.capitalize() for w in name.split("_"))
                for name, n in re.findall(r"REGISTRY_ERROR_(\w+) = (\d+)", source)}
    assert c_errors == REGISTRY_ERRORS.codes
