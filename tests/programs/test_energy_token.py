"""The energy-token program in LiteSVM: trustless settle_and_mint and every refusal, by error name.

A reading is credited only when the same transaction carries an Ed25519 precompile check of exactly its
60 bytes by the meter's registered key; the registry's marks move only through the program's PDA.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from nacl.signing import SigningKey
from program_testkit import funded, refused_by, refused_without_effect, set_unix_time, with_account, without_signature
from solders.account import Account
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.sysvar import INSTRUCTIONS
from spl.token.constants import TOKEN_PROGRAM_ID
from spl.token.instructions import create_associated_token_account, get_associated_token_address

from gridtokenx.reading import ClockSource, Reading, SignedReading, encode, sign
from programs.client import LiteSVMChain, TxResult, ed25519_verify_instruction, program_so
from programs.client.deploy import add_program_with_authority
from programs.energy_token import client as energy
from programs.energy_token.bootstrap import (
    GridDeployment,
    RegisteredMeter,
    bootstrap,
    register_active_meter,
)
from programs.energy_token.client import ENERGY_TOKEN_ERRORS
from programs.registry import client as registry

pytestmark = pytest.mark.chain

REGISTRY_ID = Keypair.from_seed(bytes([0x52]) * 32).pubkey()
ENERGY_ID = Keypair.from_seed(bytes([0x53]) * 32).pubkey()
METER_ID = "SDM630-000042"
T0 = 1_764_072_000_000  # 2025-11-25T12:00:00Z in ms


_refused = refused_by(ENERGY_TOKEN_ERRORS)


@dataclass
class World:
    chain: LiteSVMChain
    admin: Keypair
    owner: Keypair
    meter_key: SigningKey
    grid: GridDeployment
    meter: RegisteredMeter

    def reading(self, seq: int, import_wh: int, export_wh: int, **fields: object) -> Reading:
        return Reading(METER_ID, seq, T0 + seq * 60_000, import_wh, export_wh, **fields)  # type: ignore[arg-type]

    def settle_ixs(self, signed: SignedReading, key: SigningKey | None = None, *, mint: Pubkey | None = None,
                   **overrides: Pubkey) -> list[Instruction]:
        return list(energy.settle_transaction(ENERGY_ID, REGISTRY_ID, mint or self.grid.mint, self.owner.pubkey(),
                                              signed, bytes((key or self.meter_key).verify_key), **overrides))

    async def settle(self, reading: Reading, *, mint: Pubkey | None = None, **overrides: Pubkey) -> TxResult:
        ixs = self.settle_ixs(sign(reading, self.meter_key), None, mint=mint, **overrides)
        return await self.chain.send_transaction(ixs, [self.owner])

    async def balance(self, account: Pubkey | None = None) -> int:
        found = await self.chain.get_account(account or self.meter.grid_account)
        assert found is not None
        amount: int = struct.unpack_from("<Q", bytes(found.data), 64)[0]
        return amount

    async def meter_state(self) -> registry.Meter:
        found = await self.chain.get_account(self.meter.address)
        assert found is not None
        return registry.Meter.decode(bytes(found.data))


async def _world(meter_seed: bytes = bytes(range(32))) -> World:
    chain = LiteSVMChain()
    admin, owner = await funded(chain), await funded(chain)
    add_program_with_authority(chain, REGISTRY_ID, program_so("registry"), admin.pubkey())
    add_program_with_authority(chain, ENERGY_ID, program_so("energy_token"), admin.pubkey())
    grid = await bootstrap(chain, admin, REGISTRY_ID, ENERGY_ID)
    key = SigningKey(meter_seed)
    meter = await register_active_meter(chain, grid, admin, owner, METER_ID, bytes(key.verify_key))
    return World(chain, admin, owner, key, grid, meter)


@pytest.fixture
async def world() -> World:
    return await _world()


# --- Initialize ---------------------------------------------------------------------------------------

async def test_initialize_pins_registry_mint_and_authority(world: World) -> None:
    account = await world.chain.get_account(energy.config_address(ENERGY_ID)[0])
    assert account is not None and account.owner == ENERGY_ID
    config = energy.EnergyConfig.decode(bytes(account.data))
    authority, bump = energy.authority_address(ENERGY_ID)
    assert (config.registry_program, config.mint, config.authority, config.authority_bump) == (
        REGISTRY_ID, world.grid.mint, authority, bump)
    # The registry names the same PDA as its only settlement authority.
    reg = await world.chain.get_account(registry.config_address(REGISTRY_ID)[0])
    assert reg is not None and registry.RegistryConfig.decode(bytes(reg.data)).settlement_authority == authority
    again = await world.chain.send_transaction(
        [energy.initialize(ENERGY_ID, world.admin.pubkey(), world.grid.mint, REGISTRY_ID)], [world.admin])
    _refused(again, "AccountAlreadyInitialized")


async def _fresh_energy(chain: LiteSVMChain, admin: Keypair, *, decimals: int = 9,
                        authority: Pubkey | None = None, freeze: Pubkey | None = None) -> Pubkey:
    mint = Keypair()
    ixs = energy.create_grid_mint(admin.pubkey(), mint.pubkey(), authority or energy.authority_address(ENERGY_ID)[0],
                                  await chain.minimum_balance(energy.MINT_LEN), decimals=decimals,
                                  freeze_authority=freeze)
    (await chain.send_transaction(ixs, [admin, mint])).raise_for_failure()
    return mint.pubkey()


async def test_initialize_refusals() -> None:
    chain = LiteSVMChain()
    admin, intruder = await funded(chain), await funded(chain)
    add_program_with_authority(chain, ENERGY_ID, program_so("energy_token"), admin.pubkey())
    good = await _fresh_energy(chain, admin)

    async def init(mint: Pubkey, signer: Keypair = admin, **kw: object) -> TxResult:
        ix = energy.initialize(ENERGY_ID, signer.pubkey(), mint, REGISTRY_ID, **kw)  # type: ignore[arg-type]
        return await chain.send_transaction([ix], [signer])

    _refused(await init(good, intruder), "IncorrectAuthority")
    ix = energy.initialize(ENERGY_ID, admin.pubkey(), good, REGISTRY_ID)
    unsigned = Instruction(ENERGY_ID, bytes(ix.data), [AccountMeta(admin.pubkey(), False, True), *ix.accounts[1:]])
    _refused(await chain.send_transaction([unsigned], [intruder]), "MissingRequiredSignature")
    _refused(await init(await _fresh_energy(chain, admin, authority=admin.pubkey())), "WrongMintAuthority")
    _refused(await init(await _fresh_energy(chain, admin, decimals=6)), "WrongDecimals")
    _refused(await init(await _fresh_energy(chain, admin, freeze=admin.pubkey())), "MintHasFreezeAuthority")
    # A mint that already has supply (the bytes of one, as if minted before being handed over).
    used = Pubkey.new_unique()
    mint_account = await chain.get_account(good)
    assert mint_account is not None
    data = bytearray(mint_account.data)
    struct.pack_into("<Q", data, 36, 5)
    chain.svm.set_account(used, Account(mint_account.lamports, bytes(data), TOKEN_PROGRAM_ID, False, 0))
    _refused(await init(used), "MintSupplyNotZero")
    _refused(await init(good, config=Pubkey.new_unique()), "InvalidSeeds")
    (await init(good)).raise_for_failure()


# --- SettleAndMint: success ---------------------------------------------------------------------------

def _events(w: World, result: TxResult) -> list[object]:
    """The energy token's events, then the registry's (logged inside its CPI)."""
    return [*energy.decode_events(result, ENERGY_ID), *registry.decode_events(result, REGISTRY_ID)]


async def test_the_first_reading_is_the_baseline_and_later_ones_mint_the_increase(world: World) -> None:
    baseline = await world.settle(world.reading(1, 12_345, 15_845, power_w=-2450, clock=ClockSource.NTP))
    baseline.raise_for_failure()
    assert await world.balance() == 0
    assert f"Program {TOKEN_PROGRAM_ID} invoke [2]" not in baseline.logs  # no MintTo at all
    state = await world.meter_state()
    assert (state.last_seq, state.last_import_wh, state.last_export_wh) == (1, 12_345, 15_845)
    assert (state.settled_net_generation_wh, state.settlement_count) == (3_500, 1)
    assert (state.baseline_net_generation_wh, state.baseline_timestamp_ms) == (3_500, T0 + 60_000)
    owner, meter = world.owner.pubkey(), world.meter.address
    assert _events(world, baseline) == [
        energy.BaselineRecorded(meter, METER_ID, owner, 1, T0 + 60_000, 12_345, 15_845, 3_500),
        registry.SettlementRecorded(meter, METER_ID, owner, 1, T0 + 60_000, 12_345, 15_845, 3_500, 3_500, 1)]
    # The next reading mints what the meter generated since: 3.5 kWh = 3.5 GRID.
    result = await world.settle(world.reading(2, 12_400, 19_400))
    result.raise_for_failure()
    assert await world.balance() == 3_500 * energy.BASE_UNITS_PER_WH
    assert result.compute_units <= 15_000
    assert _events(world, result) == [
        energy.GridMinted(meter, METER_ID, owner, world.meter.grid_account, 2, T0 + 120_000, 12_400, 19_400, 3_500,
                          7_000, 3_500 * 10**6),
        registry.SettlementRecorded(meter, METER_ID, owner, 2, T0 + 120_000, 12_400, 19_400, 7_000, 3_500, 2)]
    # A third mints only what is new.
    (await world.settle(world.reading(3, 12_450, 19_550))).raise_for_failure()
    assert await world.balance() == 3_600 * 10**6
    mint = await world.chain.get_account(world.grid.mint)
    assert mint is not None and struct.unpack_from("<Q", bytes(mint.data), 36)[0] == 3_600 * 10**6
    state = await world.meter_state()
    assert (state.settled_net_generation_wh, state.baseline_net_generation_wh, state.settlement_count) == (
        7_100, 3_500, 3)


async def test_energy_before_registration_is_never_minted(world: World) -> None:
    # The meter arrives with eight years on its counters: 41.2 MWh exported, 6.8 MWh imported.
    lifetime_import, lifetime_export = 6_800_000, 41_200_000
    (await world.settle(world.reading(1, lifetime_import, lifetime_export))).raise_for_failure()
    assert await world.balance() == 0
    # Only what it exports after joining is credited.
    (await world.settle(world.reading(2, lifetime_import + 200, lifetime_export + 1_700))).raise_for_failure()
    assert await world.balance() == 1_500 * 10**6
    state = await world.meter_state()
    assert state.generation_since_baseline_wh == 1_500


async def test_a_consumer_heavy_lifetime_does_not_delay_a_new_prosumer(world: World) -> None:
    # Years of import before the panels went up: lifetime net -8.2 MWh. The baseline absorbs it, so the
    # first surplus after joining mints at once instead of after 8.2 MWh of catch-up.
    (await world.settle(world.reading(1, 9_000_000, 800_000))).raise_for_failure()
    assert (await world.meter_state()).settled_net_generation_wh == -8_200_000
    (await world.settle(world.reading(2, 9_000_500, 802_500))).raise_for_failure()
    assert await world.balance() == 2_000 * 10**6
    assert (await world.meter_state()).settled_net_generation_wh == -8_198_000


async def test_net_falling_below_the_mark_mints_nothing_until_it_is_passed(world: World) -> None:
    (await world.settle(world.reading(1, 1_000, 1_000))).raise_for_failure()  # baseline: net 0
    (await world.settle(world.reading(2, 1_000, 3_000))).raise_for_failure()  # net 2000: +2000 Wh
    (await world.settle(world.reading(3, 2_500, 3_000))).raise_for_failure()  # net 500: nothing
    assert await world.balance() == 2_000 * 10**6
    state = await world.meter_state()
    assert (state.last_seq, state.settled_net_generation_wh) == (3, 2_000)
    (await world.settle(world.reading(4, 2_500, 4_600))).raise_for_failure()  # net 2100: +100 Wh
    assert await world.balance() == 2_100 * 10**6


async def test_a_consumer_mints_nothing_and_its_reading_is_still_recorded(world: World) -> None:
    (await world.settle(world.reading(1, 1_000, 500))).raise_for_failure()  # baseline: net -500
    result = await world.settle(world.reading(2, 9_000, 1_000))
    result.raise_for_failure()
    assert await world.balance() == 0
    assert f"Program {TOKEN_PROGRAM_ID} invoke [2]" not in result.logs  # no MintTo at all
    state = await world.meter_state()
    assert (state.last_seq, state.settled_net_generation_wh, state.settlement_count) == (2, -500, 2)


async def test_anyone_may_relay_a_signed_reading(world: World) -> None:
    relayer = await funded(world.chain)
    for reading in (world.reading(1, 0, 0), world.reading(2, 0, 1_000)):
        ixs = world.settle_ixs(sign(reading, world.meter_key))
        (await world.chain.send_transaction(ixs, [relayer])).raise_for_failure()
    assert await world.balance() == 1_000 * 10**6  # credited to the meter's owner, not the relayer


# --- SettleAndMint: refusals --------------------------------------------------------------------------

async def test_a_reading_signed_by_another_key_is_refused(world: World) -> None:
    impostor = SigningKey(bytes(32))
    signed = sign(world.reading(1, 0, 10_000), impostor)
    result = await world.chain.send_transaction(world.settle_ixs(signed, impostor), [world.owner])
    _refused(result, "ReadingNotVerified")
    assert "Program log: settle: reading not signed by the meter's registered key:" in result.logs
    assert await world.balance() == 0


async def test_a_verification_of_other_bytes_or_none_is_refused(world: World) -> None:
    genuine = sign(world.reading(1, 0, 100), world.meter_key)
    inflated = encode(world.reading(1, 0, 100_000))
    # The precompile verified the genuine reading; the program is handed inflated bytes.
    ixs = [ed25519_verify_instruction(bytes(world.meter_key.verify_key), genuine.data, genuine.signature),
           energy.settle_and_mint(ENERGY_ID, REGISTRY_ID, world.grid.mint, world.owner.pubkey(), inflated)]
    _refused(await world.chain.send_transaction(ixs, [world.owner]), "ReadingNotVerified")
    # No precompile instruction at all.
    ix = energy.settle_and_mint(ENERGY_ID, REGISTRY_ID, world.grid.mint, world.owner.pubkey(), genuine.data)
    _refused(await world.chain.send_transaction([ix], [world.owner]), "ReadingNotVerified")
    # An account posing as the Instructions sysvar.
    fake = Pubkey.new_unique()
    world.chain.svm.set_account(fake, Account(10**7, bytes(64), Pubkey.new_unique(), False, 0))
    ixs = world.settle_ixs(genuine, instructions_sysvar=fake)
    _refused(await world.chain.send_transaction(ixs, [world.owner]), "UnsupportedSysvar")
    assert await world.balance() == 0


async def test_replayed_and_older_readings_are_refused(world: World) -> None:
    baseline = world.reading(4, 0, 0)
    (await world.settle(baseline)).raise_for_failure()
    _refused(await world.settle(baseline), "ReplayedReading")  # even the baseline, which minted nothing
    first = world.reading(5, 0, 1_000)
    (await world.settle(first)).raise_for_failure()
    _refused(await world.settle(first), "ReplayedReading")
    _refused(await world.settle(world.reading(3, 0, 2_000)), "ReplayedReading")
    # A higher sequence number whose timestamp is not newer.
    _refused(await world.settle(replace(world.reading(6, 0, 2_000), timestamp_ms=first.timestamp_ms)),
             "StaleTimestamp")
    assert await world.balance() == 1_000 * 10**6


async def test_counter_rollback_is_refused(world: World) -> None:
    (await world.settle(world.reading(1, 5_000, 9_000))).raise_for_failure()  # baseline
    _refused(await world.settle(world.reading(2, 5_000, 8_999)), "CounterRollback")
    _refused(await world.settle(world.reading(3, 4_999, 9_500)), "CounterRollback")
    assert (await world.meter_state()).last_seq == 1
    (await world.settle(world.reading(4, 5_000, 9_800))).raise_for_failure()
    _refused(await world.settle(world.reading(5, 5_000, 9_700)), "CounterRollback")
    assert ((await world.meter_state()).last_seq, await world.balance()) == (4, 800 * 10**6)


async def test_arithmetic_overflow_is_refused(world: World) -> None:
    # Counters more than 2^63 Wh apart do not fit a signed net generation, not even as a baseline.
    _refused(await world.settle(world.reading(1, 0, 2**64 - 1)), "ArithmeticOverflow")
    assert not (await world.meter_state()).has_reading
    (await world.settle(world.reading(1, 0, 0))).raise_for_failure()  # baseline
    # Net generation fits an i64 but not as base units in a u64 (2^62 Wh * 10^6).
    _refused(await world.settle(world.reading(2, 0, 2**62)), "ArithmeticOverflow")
    _refused(await world.settle(world.reading(2, 0, 2**64 - 1)), "ArithmeticOverflow")
    assert ((await world.meter_state()).last_seq, await world.balance()) == (1, 0)


async def test_meter_error_and_malformed_readings_are_refused(world: World) -> None:
    _refused(await world.settle(world.reading(1, 0, 1_000, meter_error=True)), "ReadingMeterError")
    good = sign(world.reading(1, 0, 1_000), world.meter_key)
    mutations: list[tuple[Callable[[bytes], bytes], str]] = [
        (lambda b: b[:59], "ReadingBadLength"),
        (lambda b: b"XTXR" + b[4:], "ReadingBadPrefix"),
        (lambda b: b[:4] + b"\x02" + b[5:], "ReadingBadVersion"),
        (lambda b: b[:5] + b"\x03" + b[6:], "ReadingBadFlags"),
        (lambda b: b[:6] + b"\x01" + b[7:], "ReadingBadReserved"),
        (lambda b: b[:8] + b" " + b[9:], "ReadingBadMeterId"),
        (lambda b: b[:56] + b"\x01" + b[57:], "ReadingBadPower"),
    ]
    for mutate, name in mutations:
        bad = mutate(good.data)
        ix = energy.settle_and_mint(ENERGY_ID, REGISTRY_ID, world.grid.mint, world.owner.pubkey(), bad,
                                    meter=world.meter.address)
        _refused(await world.chain.send_transaction([ix], [world.owner]), name)


async def test_a_meter_that_is_not_active_is_refused(world: World) -> None:
    ix = registry.set_meter_status(REGISTRY_ID, world.admin.pubkey(), world.meter.address,
                                   registry.MeterStatus.SUSPENDED)
    (await world.chain.send_transaction([ix], [world.admin])).raise_for_failure()
    _refused(await world.settle(world.reading(1, 0, 1_000)), "MeterNotActive")


async def test_substituted_meter_accounts_are_refused(world: World) -> None:
    # Another registered meter of the same owner, with the reading of the first.
    other_key = SigningKey(bytes([7]) * 32)
    other = await register_active_meter(world.chain, world.grid, world.admin, world.owner, "SDM630-000043",
                                        bytes(other_key.verify_key))
    _refused(await world.settle(world.reading(1, 0, 1_000), meter=other.address), "MeterMismatch")
    # A perfect copy of the meter, naming the attacker's key, owned by a look-alike registry program.
    attacker = SigningKey(bytes([9]) * 32)
    found = await world.chain.get_account(world.meter.address)
    assert found is not None
    data = bytearray(found.data)
    data[40:72] = bytes(attacker.verify_key)
    forged = Pubkey.new_unique()
    world.chain.svm.set_account(forged, Account(found.lamports, bytes(data), Pubkey.new_unique(), False, 0))
    signed = sign(world.reading(1, 0, 10**6), attacker)
    ixs = world.settle_ixs(signed, attacker, meter=forged)
    _refused(await world.chain.send_transaction(ixs, [world.owner]), "WrongRegistry")
    # A registry account of another type (the owner's user account) in the meter slot.
    ixs = world.settle_ixs(sign(world.reading(1, 0, 1), world.meter_key),
                           meter=registry.user_address(REGISTRY_ID, world.owner.pubkey())[0])
    _refused(await world.chain.send_transaction(ixs, [world.owner]), "AccountWrongSize")


async def test_forged_config_and_authority_are_refused(world: World) -> None:
    config = await world.chain.get_account(energy.config_address(ENERGY_ID)[0])
    assert config is not None
    forged = Pubkey.new_unique()
    world.chain.svm.set_account(forged, Account(config.lamports, bytes(config.data), Pubkey.new_unique(), False, 0))
    _refused(await world.settle(world.reading(1, 0, 1_000), config=forged), "InvalidAccountOwner")
    _refused(await world.settle(world.reading(1, 0, 1_000), authority=Pubkey.new_unique()), "WrongAuthority")
    # A registry account of another type as the registry config: the registry refuses it inside the CPI.
    result = await world.settle(world.reading(1, 0, 1_000),
                                registry_config=registry.user_address(REGISTRY_ID, world.owner.pubkey())[0])
    assert result.failure is not None
    assert registry.REGISTRY_ERRORS.name(result.failure) == "AccountWrongSize"
    assert f"Program {REGISTRY_ID} failed: custom program error: 0x2" in result.logs


async def test_wrong_mint_and_destination_are_refused(world: World) -> None:
    other_mint = await _fresh_energy(world.chain, world.admin, authority=world.admin.pubkey())
    _refused(await world.settle(world.reading(1, 0, 1_000), mint=other_mint), "WrongMint")
    # The owner's account of another mint.
    wrong_mint_account = get_associated_token_address(world.owner.pubkey(), other_mint)
    (await world.chain.send_transaction([create_associated_token_account(
        world.owner.pubkey(), world.owner.pubkey(), other_mint)], [world.owner])).raise_for_failure()
    _refused(await world.settle(world.reading(1, 0, 1_000), destination=wrong_mint_account), "TokenAccountWrongMint")
    # A GRID account of someone else (the relayer trying to redirect the minted GRID).
    thief = await funded(world.chain)
    theirs = get_associated_token_address(thief.pubkey(), world.grid.mint)
    (await world.chain.send_transaction([create_associated_token_account(
        thief.pubkey(), thief.pubkey(), world.grid.mint)], [thief])).raise_for_failure()
    _refused(await world.settle(world.reading(1, 0, 1_000), destination=theirs), "WrongTokenOwner")
    assert await world.balance(theirs) == 0
    # The mint account itself in the destination slot is not a token account.
    _refused(await world.settle(world.reading(1, 0, 1_000), destination=world.grid.mint), "InvalidAccountData")


async def test_program_impostors_are_refused(world: World) -> None:
    _refused(await world.settle(world.reading(1, 0, 1_000), token_program=Pubkey.new_unique()),
             "IncorrectProgramId")
    # The energy-token program itself in the registry program's slot (its own executable account).
    ed, settle = world.settle_ixs(sign(world.reading(1, 0, 1_000), world.meter_key))
    metas = list(settle.accounts)
    metas[6] = AccountMeta(ENERGY_ID, False, False)
    result = await world.chain.send_transaction([ed, Instruction(ENERGY_ID, bytes(settle.data), metas)],
                                                [world.owner])
    _refused(result, "IncorrectProgramId")


async def test_no_backend_key_can_mint_or_move_marks(world: World) -> None:
    backend = await funded(world.chain)
    # Direct MintTo: the mint authority is the program's PDA, which no key can sign for.
    mint_to = Instruction(TOKEN_PROGRAM_ID, struct.pack("<BQ", 7, 10**12), [
        AccountMeta(world.grid.mint, False, True),
        AccountMeta(world.meter.grid_account, False, True),
        AccountMeta(backend.pubkey(), True, False),
    ])
    result = await world.chain.send_transaction([mint_to], [backend])
    assert result.failure is not None and result.failure.custom_code == 4  # spl-token OwnerMismatch
    # Direct RecordSettlement: only the energy-token PDA is the registry's settlement authority.
    ix = registry.record_settlement(REGISTRY_ID, backend.pubkey(), world.meter.address, seq=1, timestamp_ms=1,
                                    import_wh=0, export_wh=10**6, settled_net_generation_wh=10**6)
    result = await world.chain.send_transaction([ix], [backend])
    assert result.failure is not None
    assert registry.REGISTRY_ERRORS.name(result.failure) == "NotSettlementAuthority"
    assert await world.balance() == 0 and not (await world.meter_state()).has_reading


async def test_unknown_instruction(world: World) -> None:
    _refused(await world.chain.send_transaction([Instruction(ENERGY_ID, bytes([7]), [])], [world.owner]),
             "UnknownInstruction")
    ix = energy.settle_and_mint(ENERGY_ID, REGISTRY_ID, world.grid.mint, world.owner.pubkey(), bytes(60))
    too_few = Instruction(ENERGY_ID, bytes(ix.data), ix.accounts[:8])
    _refused(await world.chain.send_transaction([too_few], [world.owner]), "NotEnoughAccountKeys")
    assert INSTRUCTIONS == ix.accounts[8].pubkey


async def test_settlement_under_mainnet_features() -> None:
    from solders.litesvm import LiteSVM

    chain = LiteSVMChain(LiteSVM().with_mainnet_features())
    admin, owner = await funded(chain), await funded(chain)
    add_program_with_authority(chain, REGISTRY_ID, program_so("registry"), admin.pubkey())
    add_program_with_authority(chain, ENERGY_ID, program_so("energy_token"), admin.pubkey())
    grid = await bootstrap(chain, admin, REGISTRY_ID, ENERGY_ID)
    key = SigningKey(bytes(range(32)))
    meter = await register_active_meter(chain, grid, admin, owner, METER_ID, bytes(key.verify_key))
    w = World(chain, admin, owner, key, grid, meter)
    (await w.settle(w.reading(1, 100, 100))).raise_for_failure()  # baseline
    result = await w.settle(w.reading(2, 100, 2_100))
    result.raise_for_failure()
    assert result.compute_units <= 15_000
    assert await w.balance() == 2_000 * 10**6
    _refused(await w.settle(w.reading(2, 100, 2_100)), "ReplayedReading")


async def test_after_a_key_rotation_only_the_new_key_settles(world: World) -> None:
    (await world.settle(world.reading(2**40 + 7, 1_000, 3_000))).raise_for_failure()
    new_key = SigningKey(bytes([0x42]) * 32)
    ix = registry.set_meter_key(REGISTRY_ID, world.admin.pubkey(), world.meter.address, bytes(new_key.verify_key))
    (await world.chain.send_transaction([ix], [world.admin])).raise_for_failure()
    # The old gateway's key no longer mints, even with a newer reading.
    old = sign(world.reading(2**40 + 8, 1_000, 9_000), world.meter_key)
    _refused(await world.chain.send_transaction(world.settle_ixs(old), [world.owner]), "ReadingNotVerified")
    # The new gateway numbers from 1; its first reading is no new baseline: what the meter generated above
    # the mark meanwhile is minted.
    fresh = sign(world.reading(1, 1_000, 3_500), new_key)
    (await world.chain.send_transaction(world.settle_ixs(fresh, new_key), [world.owner])).raise_for_failure()
    assert await world.balance() == 500 * 10**6
    state = await world.meter_state()
    assert (state.settlement_count, state.baseline_net_generation_wh, state.settled_net_generation_wh) == (
        2, 2_000, 2_500)
    rollback = sign(world.reading(2, 1_000, 3_400), new_key)
    _refused(await world.chain.send_transaction(world.settle_ixs(rollback, new_key), [world.owner]),
             "CounterRollback")


async def test_settle_signed_reading_looks_up_owner_and_key(world: World) -> None:
    from programs.energy_token.client import MeterNotRegistered, settle_signed_reading

    relayer = await funded(world.chain)
    baseline = sign(world.reading(1, 0, 250), world.meter_key)
    (await settle_signed_reading(world.chain, ENERGY_ID, REGISTRY_ID, world.grid.mint, baseline, relayer)
     ).raise_for_failure()
    signed = sign(world.reading(2, 0, 1_000), world.meter_key)
    result = await settle_signed_reading(world.chain, ENERGY_ID, REGISTRY_ID, world.grid.mint, signed, relayer)
    result.raise_for_failure()
    assert await world.balance() == 750 * 10**6
    again = await settle_signed_reading(world.chain, ENERGY_ID, REGISTRY_ID, world.grid.mint, signed, relayer)
    _refused(again, "ReplayedReading")
    unknown = sign(Reading("NOT-REGISTERED", 1, T0, 0, 1), world.meter_key)
    with pytest.raises(MeterNotRegistered, match="NOT-REGISTERED"):
        await settle_signed_reading(world.chain, ENERGY_ID, REGISTRY_ID, world.grid.mint, unknown, relayer)


def test_error_table_mirrors_error_h() -> None:
    # The Python names are the C enum names in CamelCase, with the same numbers.
    source = (Path(__file__).resolve().parents[2] / "programs" / "energy_token" / "src" / "error.h").read_text()
    c_errors = {int(n): "".join(w.capitalize() for w in name.split("_"))
                for name, n in re.findall(r"ENERGY_ERROR_(\w+) = (\d+)", source)}
    assert c_errors == ENERGY_TOKEN_ERRORS.codes


# --- Consume ------------------------------------------------------------------------------------------

async def test_consume_burns_the_holders_grid_and_is_recorded(world: World) -> None:
    """Tokens end burned or retired: a consumer burns the GRID of the energy it used."""
    (await world.settle(world.reading(1, 0, 1_000))).raise_for_failure()  # the baseline
    (await world.settle(world.reading(2, 0, 3_000))).raise_for_failure()  # 2 kWh minted
    set_unix_time(world.chain, 1_764_100_000)
    ix = energy.consume(ENERGY_ID, world.owner.pubkey(), world.grid.mint, 1_500 * energy.BASE_UNITS_PER_WH,
                        account=world.meter.grid_account)
    result = await world.chain.send_transaction([ix], [world.owner])
    result.raise_for_failure()
    assert await world.balance() == 500 * energy.BASE_UNITS_PER_WH
    mint = await world.chain.get_account(world.grid.mint)
    assert mint is not None and struct.unpack_from("<Q", bytes(mint.data), 36)[0] == 500 * energy.BASE_UNITS_PER_WH
    assert energy.decode_events(result, ENERGY_ID) == [energy.GridConsumed(
        world.owner.pubkey(), world.meter.grid_account, 1_500 * energy.BASE_UNITS_PER_WH,
        500 * energy.BASE_UNITS_PER_WH, 1_764_100_000)]


async def test_consume_refusals(world: World) -> None:
    (await world.settle(world.reading(1, 0, 1_000))).raise_for_failure()
    (await world.settle(world.reading(2, 0, 2_000))).raise_for_failure()  # 1 kWh
    owner, account = world.owner, world.meter.grid_account
    thief = await funded(world.chain)
    other_mint = await _fresh_energy(world.chain, world.admin, authority=world.admin.pubkey())

    def consume(holder: Keypair, amount: int, **kw: object) -> Instruction:
        return energy.consume(ENERGY_ID, holder.pubkey(), world.grid.mint, amount,
                              **{"account": account, **kw})  # type: ignore[arg-type]

    kwh = 1_000 * energy.BASE_UNITS_PER_WH
    cases = [
        (consume(thief, kwh), [thief], "WrongTokenOwner"),  # someone else's GRID
        (consume(owner, kwh + 1), [owner], "InsufficientBalance"),
        (consume(owner, 0), [owner], "ZeroAmount"),
        (without_signature(consume(owner, 1)), [thief], "MissingRequiredSignature"),
        (energy.consume(ENERGY_ID, owner.pubkey(), other_mint, 1, account=account), [owner], "WrongMint"),
        (with_account(consume(owner, 1), 3, AccountMeta(Pubkey.new_unique(), False, False)), [owner],
         "InvalidAccountOwner"),
        (with_account(consume(owner, 1), 4, AccountMeta(Pubkey.new_unique(), False, False)), [owner],
         "IncorrectProgramId"),
    ]
    for ix, signers, name in cases:
        await refused_without_effect(world.chain, ENERGY_TOKEN_ERRORS, [ix], signers, name,
                                     watch=[world.grid.mint])
    assert await world.balance() == kwh
