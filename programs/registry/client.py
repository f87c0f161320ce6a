"""Instruction builders, account decoders, PDAs and error names of the registry program.

Mirror of programs/registry/src/instructions.h and state.h (docs/programs/registry.md). Every account
starts with discriminator, version (2), bump; integers are little-endian. Version 2: every account sits at
the canonical PDA (find_program_address's bump) of the seeds it stores; the program refuses to create one
at any other bump (NonCanonicalBump) and refuses version-1 accounts.

Config  (PDA ["config"], 72 bytes):  [0] 0x10, [1] version, [2] bump, [8..40] authority,
                                     [40..72] settlement authority
User    (PDA ["user", wallet], 48):  [0] 0x11, [1] version, [2] bump, [3] kind, [4..8] meter_count u32,
                                     [8..40] wallet, [40..48] registered_at i64
Meter   (PDA ["meter", id16], 160):  [0] 0x12, [1] version, [2] bump, [3] status, [4] has_reading,
                                     [8..40] owner, [40..72] meter Ed25519 key, [72..88] meter id,
                                     [88..96] last_seq, [96..104] last_timestamp_ms,
                                     [104..112] last_import_wh, [112..120] last_export_wh,
                                     [120..128] settled_net_generation_wh i64, [128..136] registered_at i64,
                                     [136..144] settlement_count, [144..152] baseline_net_generation_wh i64,
                                     [152..160] baseline_timestamp_ms

A meter's first accepted reading is its baseline: it sets the settled mark to its own export - import and
mints nothing (docs/programs/registry.md).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from solders.instruction import AccountMeta, Instruction
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM_ID

from programs.client.chain import Chain, TxResult
from programs.client.deploy import programdata_address
from programs.client.errors import ProgramErrors
from programs.client.events import I64, U8, U64, Key, MeterId, ProgramEvents, event

__all__ = [
    "CONFIG_LEN",
    "EVENTS",
    "METER_LEN",
    "REGISTRY_ERRORS",
    "USER_LEN",
    "Meter",
    "MeterKeyChanged",
    "MeterReassigned",
    "MeterRegistered",
    "MeterStatus",
    "MeterStatusChanged",
    "RegistryConfig",
    "RegistryEvent",
    "RegistryInitialized",
    "SettlementRecorded",
    "User",
    "UserKind",
    "UserRegistered",
    "config_address",
    "decode_events",
    "fetch_meter",
    "initialize",
    "meter_address",
    "meter_id_bytes",
    "reassign_meter",
    "record_settlement",
    "register_meter",
    "register_user",
    "set_meter_key",
    "set_meter_status",
    "user_address",
]

CONFIG_SEED, USER_SEED, METER_SEED = b"config", b"user", b"meter"
DISC_CONFIG, DISC_USER, DISC_METER = 0x10, 0x11, 0x12
CONFIG_LEN, USER_LEN, METER_LEN = 72, 48, 160
VERSION = 2
METER_ID_LEN = 16
(IX_INITIALIZE, IX_REGISTER_USER, IX_REGISTER_METER, IX_SET_METER_STATUS, IX_RECORD_SETTLEMENT,
 IX_SET_METER_KEY, IX_REASSIGN_METER) = range(7)

REGISTRY_ERRORS = ProgramErrors("registry", {
    1: "UnknownInstruction",
    2: "AccountWrongSize",
    3: "WrongAccountType",
    4: "AlreadyRegistered",
    5: "Unauthorised",
    6: "NotSettlementAuthority",
    7: "InvalidUserKind",
    8: "InvalidMeterId",
    9: "InvalidStatus",
    10: "MeterDecommissioned",
    11: "WrongUser",
    12: "MeterNotActive",
    13: "StaleReading",
    14: "CounterRollback",
    15: "SettledMarkMismatch",
    16: "SameMeterKey",
    17: "MeterHasHistory",
    18: "NonCanonicalBump",
})


class UserKind(IntEnum):
    PROSUMER = 1
    CONSUMER = 2


class MeterStatus(IntEnum):
    PENDING = 0
    ACTIVE = 1
    SUSPENDED = 2
    DECOMMISSIONED = 3


def meter_id_bytes(meter_id: str | bytes) -> bytes:
    """The 16-byte NUL-padded id as in the reading (the program checks the characters)."""
    raw = meter_id.encode("ascii") if isinstance(meter_id, str) else meter_id
    if len(raw) > METER_ID_LEN:
        raise ValueError(f"meter id {raw!r} is longer than {METER_ID_LEN} bytes")
    return raw.ljust(METER_ID_LEN, b"\0")


def config_address(program_id: Pubkey) -> tuple[Pubkey, int]:
    return Pubkey.find_program_address([CONFIG_SEED], program_id)


def user_address(program_id: Pubkey, wallet: Pubkey) -> tuple[Pubkey, int]:
    return Pubkey.find_program_address([USER_SEED, bytes(wallet)], program_id)


def meter_address(program_id: Pubkey, meter_id: str | bytes) -> tuple[Pubkey, int]:
    return Pubkey.find_program_address([METER_SEED, meter_id_bytes(meter_id)], program_id)


def _check(data: bytes, disc: int, length: int, what: str) -> None:
    if len(data) != length or data[0] != disc or data[1] != VERSION:
        raise ValueError(f"not a version-{VERSION} registry {what} account ({len(data)} bytes, "
                         f"discriminator and version {data[:2].hex()})")


@dataclass(frozen=True)
class RegistryConfig:
    version: int
    bump: int
    authority: Pubkey
    settlement_authority: Pubkey

    @classmethod
    def decode(cls, data: bytes) -> RegistryConfig:
        _check(data, DISC_CONFIG, CONFIG_LEN, "config")
        return cls(data[1], data[2], Pubkey.from_bytes(data[8:40]), Pubkey.from_bytes(data[40:72]))


@dataclass(frozen=True)
class User:
    version: int
    bump: int
    kind: UserKind
    meter_count: int
    wallet: Pubkey
    registered_at: int

    @classmethod
    def decode(cls, data: bytes) -> User:
        _check(data, DISC_USER, USER_LEN, "user")
        (meter_count,) = struct.unpack_from("<I", data, 4)
        (registered_at,) = struct.unpack_from("<q", data, 40)
        return cls(data[1], data[2], UserKind(data[3]), meter_count, Pubkey.from_bytes(data[8:40]), registered_at)


@dataclass(frozen=True)
class Meter:
    version: int
    bump: int
    status: MeterStatus
    has_reading: bool
    owner: Pubkey
    meter_key: bytes
    meter_id: str
    last_seq: int
    last_timestamp_ms: int
    last_import_wh: int
    last_export_wh: int
    settled_net_generation_wh: int
    registered_at: int
    settlement_count: int  # readings accepted, the baseline included
    baseline_net_generation_wh: int  # export - import of the first accepted reading (never minted)
    baseline_timestamp_ms: int  # that reading's timestamp; 0 before the baseline

    @property
    def has_baseline(self) -> bool:
        """Whether a first reading has been accepted: until then the next one mints nothing."""
        return self.settlement_count > 0

    @property
    def generation_since_baseline_wh(self) -> int:
        """Net generation settled above the baseline: what has been minted (and may be certified)."""
        return self.settled_net_generation_wh - self.baseline_net_generation_wh

    @classmethod
    def decode(cls, data: bytes) -> Meter:
        _check(data, DISC_METER, METER_LEN, "meter")
        seq, ts, imp, exp, settled, registered, count, baseline, baseline_ts = struct.unpack_from(
            "<QQQQqqQqQ", data, 88)
        return cls(data[1], data[2], MeterStatus(data[3]), bool(data[4]), Pubkey.from_bytes(data[8:40]),
                   bytes(data[40:72]), bytes(data[72:88]).rstrip(b"\0").decode("ascii"), seq, ts, imp, exp,
                   settled, registered, count, baseline, baseline_ts)


async def fetch_meter(chain: Chain, program_id: Pubkey, meter_id: str | bytes) -> Meter | None:
    """The registry's meter account for ``meter_id``, or None if it is not registered."""
    account = await chain.get_account(meter_address(program_id, meter_id)[0])
    if account is None:
        return None
    if account.owner != program_id:
        raise ValueError(f"meter account of {meter_id!r} is owned by {account.owner}, not the registry")
    return Meter.decode(bytes(account.data))


# --- events (programs/registry/src/events.h; docs/programs.md "Events") -----------------------------------

@event("RegistryInitialized")
@dataclass(frozen=True)
class RegistryInitialized:
    """Initialize: the config and its two authorities."""

    config: Key
    authority: Key
    settlement_authority: Key


@event("UserRegistered")
@dataclass(frozen=True)
class UserRegistered:
    wallet: Key
    user: Key  # the user PDA
    kind: U8  # UserKind
    registered_at: I64


@event("MeterRegistered")
@dataclass(frozen=True)
class MeterRegistered:
    """RegisterMeter: the meter is Pending."""

    meter: Key  # the meter PDA
    meter_id: MeterId
    owner: Key
    meter_key: Key
    registered_at: I64


@event("MeterStatusChanged")
@dataclass(frozen=True)
class MeterStatusChanged:
    meter: Key
    meter_id: MeterId
    owner: Key
    previous_status: U8
    status: U8


@event("MeterKeyChanged")
@dataclass(frozen=True)
class MeterKeyChanged:
    """SetMeterKey: the sequence / timestamp history is cleared too."""

    meter: Key
    meter_id: MeterId
    owner: Key
    previous_key: Key
    meter_key: Key


@event("MeterReassigned")
@dataclass(frozen=True)
class MeterReassigned:
    """ReassignMeter: new owner and key; status Pending."""

    meter: Key
    meter_id: MeterId
    previous_owner: Key
    owner: Key
    meter_key: Key
    previous_status: U8
    status: U8


@event("SettlementRecorded")
@dataclass(frozen=True)
class SettlementRecorded:
    """RecordSettlement (by CPI from the energy token): the meter's last accepted reading and its mark.
    ``settlement_count == 1``: this reading was the meter's baseline."""

    meter: Key
    meter_id: MeterId
    owner: Key
    seq: U64
    timestamp_ms: U64
    import_wh: U64
    export_wh: U64
    settled_net_generation_wh: I64
    baseline_net_generation_wh: I64
    settlement_count: U64


RegistryEvent = (RegistryInitialized | UserRegistered | MeterRegistered | MeterStatusChanged | MeterKeyChanged
                 | MeterReassigned | SettlementRecorded)
EVENTS = ProgramEvents("registry", [RegistryInitialized, UserRegistered, MeterRegistered, MeterStatusChanged,
                                    MeterKeyChanged, MeterReassigned, SettlementRecorded])


def decode_events(result: TxResult, program_id: Pubkey) -> list[RegistryEvent]:
    """The registry's events in a transaction, in order: those the registry at ``program_id`` logged
    itself, also inside another program's CPI (EventsTruncated if the logs were cut off)."""
    return [e.event for e in result.decode_events({program_id: EVENTS}).complete()]


def initialize(program_id: Pubkey, authority: Pubkey, settlement_authority: Pubkey, *,
               config: Pubkey | None = None, bump: int | None = None,
               programdata: Pubkey | None = None) -> Instruction:
    """0 Initialize — accounts: authority [w, s] (the upgrade authority; pays), config [w],
    programdata [], System program. Data: [0] disc, [1] bump, [2..34] settlement authority."""
    derived, derived_bump = config_address(program_id)
    return Instruction(program_id, bytes([IX_INITIALIZE, derived_bump if bump is None else bump])
                       + bytes(settlement_authority), [
        AccountMeta(authority, True, True),
        AccountMeta(config or derived, False, True),
        AccountMeta(programdata or programdata_address(program_id), False, False),
        AccountMeta(SYSTEM_PROGRAM_ID, False, False),
    ])


def register_user(program_id: Pubkey, wallet: Pubkey, kind: int, *, user: Pubkey | None = None,
                  bump: int | None = None, wallet_signs: bool = True) -> Instruction:
    """1 RegisterUser — accounts: wallet [w, s] (pays), user [w], System program.
    Data: [0] disc, [1] bump, [2] kind."""
    derived, derived_bump = user_address(program_id, wallet)
    return Instruction(program_id, bytes([IX_REGISTER_USER, derived_bump if bump is None else bump, kind]), [
        AccountMeta(wallet, wallet_signs, True),
        AccountMeta(user or derived, False, True),
        AccountMeta(SYSTEM_PROGRAM_ID, False, False),
    ])


def register_meter(program_id: Pubkey, owner: Pubkey, meter_id: str | bytes, meter_key: bytes, *,
                   user: Pubkey | None = None, meter: Pubkey | None = None, bump: int | None = None,
                   owner_signs: bool = True) -> Instruction:
    """2 RegisterMeter — accounts: owner [w, s] (pays), user [w] (owner's), meter [w], System program.
    Data: [0] disc, [1] bump, [2..18] meter id, [18..50] meter Ed25519 key."""
    if len(meter_key) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    derived, derived_bump = meter_address(program_id, meter_id)
    data = bytes([IX_REGISTER_METER, derived_bump if bump is None else bump]) + meter_id_bytes(meter_id) + meter_key
    return Instruction(program_id, data, [
        AccountMeta(owner, owner_signs, True),
        AccountMeta(user or user_address(program_id, owner)[0], False, True),
        AccountMeta(meter or derived, False, True),
        AccountMeta(SYSTEM_PROGRAM_ID, False, False),
    ])


def set_meter_status(program_id: Pubkey, authority: Pubkey, meter: Pubkey, status: int, *,
                     config: Pubkey | None = None, authority_signs: bool = True) -> Instruction:
    """3 SetMeterStatus — accounts: authority [s], config [], meter [w]. Data: [0] disc, [1] status."""
    return Instruction(program_id, bytes([IX_SET_METER_STATUS, status]), [
        AccountMeta(authority, authority_signs, False),
        AccountMeta(config or config_address(program_id)[0], False, False),
        AccountMeta(meter, False, True),
    ])


def record_settlement(program_id: Pubkey, settlement_authority: Pubkey, meter: Pubkey, *, seq: int,
                      timestamp_ms: int, import_wh: int, export_wh: int, settled_net_generation_wh: int,
                      config: Pubkey | None = None) -> Instruction:
    """4 RecordSettlement (normally by CPI from the energy-token program) — accounts: settlement
    authority [s], config [], meter [w]. Data: [0] disc, [1..9] seq, [9..17] timestamp_ms,
    [17..25] import_wh, [25..33] export_wh, [33..41] settled_net_generation_wh i64."""
    data = struct.pack("<BQQQQq", IX_RECORD_SETTLEMENT, seq, timestamp_ms, import_wh, export_wh,
                       settled_net_generation_wh)
    return Instruction(program_id, data, [
        AccountMeta(settlement_authority, True, False),
        AccountMeta(config or config_address(program_id)[0], False, False),
        AccountMeta(meter, False, True),
    ])


def set_meter_key(program_id: Pubkey, authority: Pubkey, meter: Pubkey, meter_key: bytes, *,
                  config: Pubkey | None = None, authority_signs: bool = True) -> Instruction:
    """5 SetMeterKey — accounts: authority [s], config [], meter [w]. Data: [0] disc, [1..33] new meter key.
    Clears the sequence / timestamp history (the new gateway numbers afresh); counters and mark stay."""
    if len(meter_key) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return Instruction(program_id, bytes([IX_SET_METER_KEY]) + meter_key, [
        AccountMeta(authority, authority_signs, False),
        AccountMeta(config or config_address(program_id)[0], False, False),
        AccountMeta(meter, False, True),
    ])


def reassign_meter(program_id: Pubkey, authority: Pubkey, meter: Pubkey, current_owner: Pubkey, new_owner: Pubkey,
                   meter_key: bytes, *, config: Pubkey | None = None) -> Instruction:
    """6 ReassignMeter (never-settled meters only) — accounts: authority [s], config [], meter [w],
    current owner's user [w], new owner's user [w]. Data: [0] disc, [1..33] new meter key."""
    if len(meter_key) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return Instruction(program_id, bytes([IX_REASSIGN_METER]) + meter_key, [
        AccountMeta(authority, True, False),
        AccountMeta(config or config_address(program_id)[0], False, False),
        AccountMeta(meter, False, True),
        AccountMeta(user_address(program_id, current_owner)[0], False, True),
        AccountMeta(user_address(program_id, new_owner)[0], False, True),
    ])
