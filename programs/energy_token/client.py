"""Instruction builders, config decoder, PDAs and error names of the energy-token program.

Mirror of programs/energy_token/src/instructions.h and state.h (docs/programs/energy-token.md).

Config (PDA ["config"], 104 bytes): [0] 0x20, [1] version (2), [2] bump, [3] authority bump,
[8..40] registry program, [40..72] GRID mint, [72..104] authority PDA ["authority"] (GRID's mint
authority and the registry's settlement authority).

GRID: 9 decimals, 1 kWh = 1 GRID = 10**9 base units, so 1 Wh = 10**6 base units exactly.

A meter's first accepted reading is its baseline: it mints nothing and sets the settled mark to its own
export - import; later readings mint (export - import) - mark when positive (docs/programs/energy-token.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from solders.system_program import CreateAccountParams, create_account
from solders.sysvar import INSTRUCTIONS
from spl.token.constants import TOKEN_PROGRAM_ID
from spl.token.instructions import get_associated_token_address

from gridtokenx.reading import SignedReading, decode
from programs.client.chain import Chain, TxResult
from programs.client.deploy import programdata_address
from programs.client.ed25519 import ed25519_verify_instruction
from programs.client.errors import ProgramErrors
from programs.client.events import I64, U64, Key, MeterId, ProgramEvents, event
from programs.registry import client as registry

__all__ = [
    "BASE_UNITS_PER_WH",
    "CONFIG_LEN",
    "ENERGY_TOKEN_ERRORS",
    "EVENTS",
    "GRID_DECIMALS",
    "MINT_LEN",
    "BaselineRecorded",
    "EnergyConfig",
    "EnergyTokenEvent",
    "EnergyTokenInitialized",
    "GridConsumed",
    "GridMinted",
    "MeterNotRegistered",
    "authority_address",
    "config_address",
    "consume",
    "create_grid_mint",
    "decode_events",
    "initialize",
    "settle_and_mint",
    "settle_signed_reading",
    "settle_transaction",
]

CONFIG_SEED, AUTHORITY_SEED = b"config", b"authority"
DISC_CONFIG = 0x20
VERSION = 2  # the config at the canonical PDA ["config"], naming the canonical authority PDA
CONFIG_LEN = 104
MINT_LEN = 82
GRID_DECIMALS = 9
BASE_UNITS_PER_WH = 10**6
IX_INITIALIZE, IX_SETTLE_AND_MINT, IX_CONSUME = 0, 1, 2
_TOKEN_INITIALIZE_MINT2 = 20

ENERGY_TOKEN_ERRORS = ProgramErrors("energy_token", {
    1: "UnknownInstruction",
    2: "AccountWrongSize",
    3: "WrongAccountType",
    4: "WrongMintAuthority",
    5: "WrongDecimals",
    6: "MintHasFreezeAuthority",
    7: "MintSupplyNotZero",
    8: "ReadingBadLength",
    9: "ReadingBadPrefix",
    10: "ReadingBadVersion",
    11: "ReadingBadFlags",
    12: "ReadingBadReserved",
    13: "ReadingBadMeterId",
    14: "ReadingBadPower",
    15: "ReadingMeterError",
    16: "WrongRegistry",
    17: "MeterMismatch",
    18: "MeterNotActive",
    19: "ReadingNotVerified",
    20: "ReplayedReading",
    21: "StaleTimestamp",
    22: "CounterRollback",
    23: "WrongMint",
    24: "TokenAccountWrongMint",
    25: "WrongTokenOwner",
    26: "WrongAuthority",
    27: "NonCanonicalBump",
    28: "ZeroAmount",
    29: "InsufficientBalance",
})


def config_address(program_id: Pubkey) -> tuple[Pubkey, int]:
    return Pubkey.find_program_address([CONFIG_SEED], program_id)


def authority_address(program_id: Pubkey) -> tuple[Pubkey, int]:
    """GRID's mint authority and the registry's settlement authority (no data)."""
    return Pubkey.find_program_address([AUTHORITY_SEED], program_id)


@dataclass(frozen=True)
class EnergyConfig:
    version: int
    bump: int
    authority_bump: int
    registry_program: Pubkey
    mint: Pubkey
    authority: Pubkey

    @classmethod
    def decode(cls, data: bytes) -> EnergyConfig:
        if len(data) != CONFIG_LEN or data[0] != DISC_CONFIG or data[1] != VERSION:
            raise ValueError(f"not a version-{VERSION} energy-token config ({len(data)} bytes)")
        return cls(data[1], data[2], data[3], Pubkey.from_bytes(data[8:40]), Pubkey.from_bytes(data[40:72]),
                   Pubkey.from_bytes(data[72:104]))


# --- events (programs/energy_token/src/events.h; docs/programs.md "Events") -------------------------------

@event("EnergyTokenInitialized")
@dataclass(frozen=True)
class EnergyTokenInitialized:
    config: Key
    registry_program: Key
    mint: Key
    authority: Key


@event("BaselineRecorded")
@dataclass(frozen=True)
class BaselineRecorded:
    """SettleAndMint of a meter's first reading: recorded as its baseline, nothing minted."""

    meter: Key
    meter_id: MeterId
    owner: Key
    seq: U64
    timestamp_ms: U64
    import_wh: U64
    export_wh: U64
    baseline_net_generation_wh: I64


@event("GridMinted")
@dataclass(frozen=True)
class GridMinted:
    """SettleAndMint of a later reading: ``amount`` base units minted to ``destination`` (0 when the net
    generation is not above ``previous_mark``; the reading is recorded all the same)."""

    meter: Key
    meter_id: MeterId
    owner: Key
    destination: Key
    seq: U64
    timestamp_ms: U64
    import_wh: U64
    export_wh: U64
    previous_mark: I64
    mark: I64
    amount: U64


@event("GridConsumed")
@dataclass(frozen=True)
class GridConsumed:
    """Consume: the holder burned ``amount`` GRID it consumed from ``account`` (``balance`` left)."""

    holder: Key
    account: Key
    amount: U64
    balance: U64
    timestamp: I64


EnergyTokenEvent = EnergyTokenInitialized | BaselineRecorded | GridMinted | GridConsumed
EVENTS = ProgramEvents("energy_token", [EnergyTokenInitialized, BaselineRecorded, GridMinted, GridConsumed])


def decode_events(result: TxResult, program_id: Pubkey) -> list[EnergyTokenEvent]:
    """The energy token's events in a transaction, in order (EventsTruncated if the logs were cut off).
    The registry's SettlementRecorded, logged inside its CPI, is the registry's: registry.decode_events."""
    return [e.event for e in result.decode_events({program_id: EVENTS}).complete()]


def create_grid_mint(payer: Pubkey, mint: Pubkey, mint_authority: Pubkey, lamports: int, *,
                     decimals: int = GRID_DECIMALS, freeze_authority: Pubkey | None = None) -> list[Instruction]:
    """System CreateAccount (82 bytes, Token program) + Token InitializeMint2; ``mint`` signs.
    GRID: 9 decimals, mint authority = :func:`authority_address`, no freeze authority."""
    create = create_account(CreateAccountParams(from_pubkey=payer, to_pubkey=mint, lamports=lamports,
                                                space=MINT_LEN, owner=TOKEN_PROGRAM_ID))
    freeze = b"\x01" + bytes(freeze_authority) if freeze_authority is not None else b"\x00"
    init = Instruction(TOKEN_PROGRAM_ID, bytes([_TOKEN_INITIALIZE_MINT2, decimals]) + bytes(mint_authority) + freeze,
                       [AccountMeta(mint, False, True)])
    return [create, init]


def initialize(program_id: Pubkey, admin: Pubkey, mint: Pubkey, registry_program: Pubkey, *,
               config: Pubkey | None = None, config_bump: int | None = None,
               authority_bump: int | None = None, programdata: Pubkey | None = None) -> Instruction:
    """0 Initialize — accounts: admin [w, s] (upgrade authority; pays), config [w], GRID mint [],
    programdata [], System program. Data: [0] disc, [1] config bump, [2] authority bump,
    [3..35] registry program id."""
    derived, derived_bump = config_address(program_id)
    a_bump = authority_address(program_id)[1] if authority_bump is None else authority_bump
    data = bytes([IX_INITIALIZE, derived_bump if config_bump is None else config_bump, a_bump])
    return Instruction(program_id, data + bytes(registry_program), [
        AccountMeta(admin, True, True),
        AccountMeta(config or derived, False, True),
        AccountMeta(mint, False, False),
        AccountMeta(programdata or programdata_address(program_id), False, False),
        AccountMeta(SYSTEM_PROGRAM_ID, False, False),
    ])


def settle_and_mint(program_id: Pubkey, registry_program: Pubkey, mint: Pubkey, owner: Pubkey, reading: bytes, *,
                    meter: Pubkey | None = None, destination: Pubkey | None = None,
                    authority: Pubkey | None = None, config: Pubkey | None = None,
                    registry_config: Pubkey | None = None, token_program: Pubkey = TOKEN_PROGRAM_ID,
                    instructions_sysvar: Pubkey = INSTRUCTIONS) -> Instruction:
    """1 SettleAndMint — accounts: config [], meter [w], owner's GRID token account [w], GRID mint [w],
    authority PDA [], registry config [], registry program, Token program, Instructions sysvar.
    Data: [0] disc, [1..61] the 60-byte reading. ``owner`` is the meter's owner; the destination
    defaults to its associated GRID account. Needs an Ed25519 check of the reading in the same
    transaction: use :func:`settle_transaction`."""
    meter_id = reading[8:24]
    return Instruction(program_id, bytes([IX_SETTLE_AND_MINT]) + reading, [
        AccountMeta(config or config_address(program_id)[0], False, False),
        AccountMeta(meter or registry.meter_address(registry_program, meter_id)[0], False, True),
        AccountMeta(destination or get_associated_token_address(owner, mint), False, True),
        AccountMeta(mint, False, True),
        AccountMeta(authority or authority_address(program_id)[0], False, False),
        AccountMeta(registry_config or registry.config_address(registry_program)[0], False, False),
        AccountMeta(registry_program, False, False),
        AccountMeta(token_program, False, False),
        AccountMeta(instructions_sysvar, False, False),
    ])


def consume(program_id: Pubkey, holder: Pubkey, mint: Pubkey, amount: int, *, account: Pubkey | None = None,
            config: Pubkey | None = None, holder_signs: bool = True) -> Instruction:
    """2 Consume — the holder burns GRID it consumed. Accounts: holder [s], holder's GRID account [w]
    (default: its associated account), GRID mint [w], config [], Token program. Data: [0] disc,
    [1..9] amount u64 (base units)."""
    return Instruction(program_id, bytes([IX_CONSUME]) + amount.to_bytes(8, "little"), [
        AccountMeta(holder, holder_signs, False),
        AccountMeta(account or get_associated_token_address(holder, mint), False, True),
        AccountMeta(mint, False, True),
        AccountMeta(config or config_address(program_id)[0], False, False),
        AccountMeta(TOKEN_PROGRAM_ID, False, False),
    ])


def settle_transaction(program_id: Pubkey, registry_program: Pubkey, mint: Pubkey, owner: Pubkey,
                       signed: SignedReading, meter_key: bytes, **overrides: Pubkey) -> Sequence[Instruction]:
    """The two instructions of a trustless settlement: the Ed25519 precompile check of the reading by
    ``meter_key`` (the key registered for the meter), then SettleAndMint over the same bytes."""
    return [
        ed25519_verify_instruction(meter_key, signed.data, signed.signature),
        settle_and_mint(program_id, registry_program, mint, owner, signed.data, **overrides),
    ]


class MeterNotRegistered(LookupError):
    """The reading's meter id has no registry meter account."""


async def settle_signed_reading(chain: Chain, program_id: Pubkey, registry_program: Pubkey, mint: Pubkey,
                                signed: SignedReading, relayer: Keypair) -> TxResult:
    """Settle one signed reading as a relayer (the backend's minting worker): look up the meter's owner
    and registered key in the registry, send [Ed25519 check, SettleAndMint] paid by ``relayer``.
    A refusal comes back as the result's ``failure`` (name it with ENERGY_TOKEN_ERRORS)."""
    meter_id = decode(signed.data).meter_id
    meter = await registry.fetch_meter(chain, registry_program, meter_id)
    if meter is None:
        raise MeterNotRegistered(f"meter {meter_id!r} is not registered in {registry_program}")
    ixs = settle_transaction(program_id, registry_program, mint, meter.owner, signed, meter.meter_key)
    return await chain.send_transaction(ixs, [relayer])
