"""Instruction builders, account decoders, PDAs and error names of the certificates program.

Mirror of programs/certificates/src/instructions.h and state.h (docs/programs/certificates.md).
Integers little-endian; every account starts with discriminator, version (2), bump. Version 2: every
account sits at the canonical PDA (find_program_address's bump) of the seeds it stores.

Config      (PDA ["config"], 80 bytes): [0] 0x30, [8..40] governance, [40..72] registry program,
                                        [72..80] validity_seconds i64
Mark        (PDA ["mark", meter], 56):  [0] 0x31, [8..40] meter, [40..48] certified_up_to_wh,
                                        [48..56] next_index
Certificate (PDA ["cert", meter, index u64 LE], 128): [0] 0x32, [3] status, [4..6] revoke_reason u16,
            [8..40] meter, [40..72] holder, [72..80] index, [80..88] from_wh, [88..96] to_wh,
            [96..104] issued_at, [104..112] expires_at, [112..120] validated_at, [120..128] closed_at

Positions (certified_up_to_wh, from_wh, to_wh) are Wh of settled net generation above the meter's
baseline (registry Meter.generation_since_baseline_wh): the counters' history before the meter joined is
never certifiable.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from solders.instruction import AccountMeta, Instruction
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM_ID

from programs.client.chain import TxResult
from programs.client.deploy import programdata_address
from programs.client.errors import ProgramErrors
from programs.client.events import I64, U8, U16, U64, Key, MeterId, ProgramEvents, event

__all__ = [
    "CERTIFICATES_ERRORS",
    "CERTIFICATE_LEN",
    "CONFIG_LEN",
    "EVENTS",
    "MARK_LEN",
    "ONE_YEAR_SECONDS",
    "CertConfig",
    "CertMark",
    "Certificate",
    "CertificateEvent",
    "CertificateExpired",
    "CertificateIssued",
    "CertificateRetired",
    "CertificateRevoked",
    "CertificateStatus",
    "CertificateTransferred",
    "CertificateValidated",
    "CertificatesInitialized",
    "certificate_address",
    "config_address",
    "decode_events",
    "expire",
    "initialize",
    "issue",
    "mark_address",
    "retire",
    "revoke",
    "transfer",
    "validate",
]

CONFIG_SEED, MARK_SEED, CERT_SEED = b"config", b"mark", b"cert"
DISC_CONFIG, DISC_MARK, DISC_CERTIFICATE = 0x30, 0x31, 0x32
CONFIG_LEN, MARK_LEN, CERTIFICATE_LEN = 80, 56, 128
VERSION = 2  # every account at the canonical PDA of the seeds it stores
ONE_YEAR_SECONDS = 365 * 24 * 3600
IX_INITIALIZE, IX_ISSUE, IX_VALIDATE, IX_RETIRE, IX_REVOKE, IX_EXPIRE, IX_TRANSFER = range(7)

CERTIFICATES_ERRORS = ProgramErrors("certificates", {
    1: "UnknownInstruction",
    2: "AccountWrongSize",
    3: "WrongAccountType",
    4: "NotGovernance",
    5: "WrongRegistry",
    6: "NotMeterOwner",
    7: "MarkMeterMismatch",
    8: "AlreadyCertified",
    9: "ExceedsSettledGeneration",
    10: "InvalidState",
    11: "CertificateExpired",
    12: "NotYetExpired",
    13: "InvalidReason",
    14: "NotCertificateOwner",
    15: "InvalidValidity",
    16: "NonCanonicalBump",
})


class CertificateStatus(IntEnum):
    PENDING = 0
    VALID = 1
    RETIRED = 2
    REVOKED = 3
    EXPIRED = 4


def config_address(program_id: Pubkey) -> tuple[Pubkey, int]:
    return Pubkey.find_program_address([CONFIG_SEED], program_id)


def mark_address(program_id: Pubkey, meter: Pubkey) -> tuple[Pubkey, int]:
    return Pubkey.find_program_address([MARK_SEED, bytes(meter)], program_id)


def certificate_address(program_id: Pubkey, meter: Pubkey, index: int) -> tuple[Pubkey, int]:
    return Pubkey.find_program_address([CERT_SEED, bytes(meter), struct.pack("<Q", index)], program_id)


def _check(data: bytes, disc: int, length: int, what: str) -> None:
    if len(data) != length or data[0] != disc or data[1] != VERSION:
        raise ValueError(f"not a version-{VERSION} certificates {what} account ({len(data)} bytes)")


@dataclass(frozen=True)
class CertConfig:
    governance: Pubkey
    registry_program: Pubkey
    validity_seconds: int

    @classmethod
    def decode(cls, data: bytes) -> CertConfig:
        _check(data, DISC_CONFIG, CONFIG_LEN, "config")
        return cls(Pubkey.from_bytes(data[8:40]), Pubkey.from_bytes(data[40:72]), struct.unpack_from("<q", data, 72)[0])


@dataclass(frozen=True)
class CertMark:
    meter: Pubkey
    certified_up_to_wh: int
    next_index: int

    @classmethod
    def decode(cls, data: bytes) -> CertMark:
        _check(data, DISC_MARK, MARK_LEN, "mark")
        return cls(Pubkey.from_bytes(data[8:40]), *struct.unpack_from("<QQ", data, 40))


@dataclass(frozen=True)
class Certificate:
    status: CertificateStatus
    revoke_reason: int
    meter: Pubkey
    owner: Pubkey
    index: int
    from_wh: int
    to_wh: int
    issued_at: int
    expires_at: int
    validated_at: int
    closed_at: int

    @classmethod
    def decode(cls, data: bytes) -> Certificate:
        _check(data, DISC_CERTIFICATE, CERTIFICATE_LEN, "certificate")
        (reason,) = struct.unpack_from("<H", data, 4)
        index, from_wh, to_wh, issued, expires, validated, closed = struct.unpack_from("<QQQqqqq", data, 72)
        return cls(CertificateStatus(data[3]), reason, Pubkey.from_bytes(data[8:40]), Pubkey.from_bytes(data[40:72]),
                   index, from_wh, to_wh, issued, expires, validated, closed)


# --- events (programs/certificates/src/events.h; docs/programs.md "Events") -------------------------------
# Every certificate event starts with the same fields: certificate, meter, holder (after the change),
# index, from_wh, to_wh, status (after the change), timestamp (Clock unix seconds).

@event("CertificatesInitialized")
@dataclass(frozen=True)
class CertificatesInitialized:
    config: Key
    governance: Key
    registry_program: Key
    validity_seconds: I64


@event("CertificateIssued")
@dataclass(frozen=True)
class CertificateIssued:
    certificate: Key
    meter: Key
    holder: Key
    index: U64
    from_wh: U64
    to_wh: U64
    status: U8
    timestamp: I64
    expires_at: I64
    meter_id: MeterId


@event("CertificateValidated")
@dataclass(frozen=True)
class CertificateValidated:
    certificate: Key
    meter: Key
    holder: Key
    index: U64
    from_wh: U64
    to_wh: U64
    status: U8
    timestamp: I64
    governance: Key


@event("CertificateTransferred")
@dataclass(frozen=True)
class CertificateTransferred:
    certificate: Key
    meter: Key
    holder: Key  # the new holder
    index: U64
    from_wh: U64
    to_wh: U64
    status: U8
    timestamp: I64
    previous_holder: Key


@event("CertificateRetired")
@dataclass(frozen=True)
class CertificateRetired:
    certificate: Key
    meter: Key
    holder: Key
    index: U64
    from_wh: U64
    to_wh: U64
    status: U8
    timestamp: I64


@event("CertificateRevoked")
@dataclass(frozen=True)
class CertificateRevoked:
    certificate: Key
    meter: Key
    holder: Key
    index: U64
    from_wh: U64
    to_wh: U64
    status: U8
    timestamp: I64
    reason: U16
    governance: Key


@event("CertificateExpired")
@dataclass(frozen=True)
class CertificateExpired:
    certificate: Key
    meter: Key
    holder: Key
    index: U64
    from_wh: U64
    to_wh: U64
    status: U8
    timestamp: I64


CertificateEvent = (CertificatesInitialized | CertificateIssued | CertificateValidated | CertificateTransferred
                    | CertificateRetired | CertificateRevoked | CertificateExpired)
EVENTS = ProgramEvents("certificates", [CertificatesInitialized, CertificateIssued, CertificateValidated,
                                        CertificateTransferred, CertificateRetired, CertificateRevoked,
                                        CertificateExpired])


def decode_events(result: TxResult, program_id: Pubkey) -> list[CertificateEvent]:
    """The certificates program's events in a transaction, in order (EventsTruncated if cut off)."""
    return [e.event for e in result.decode_events({program_id: EVENTS}).complete()]


def initialize(program_id: Pubkey, admin: Pubkey, governance: Pubkey, registry_program: Pubkey, *,
               validity_seconds: int = ONE_YEAR_SECONDS, bump: int | None = None,
               config: Pubkey | None = None, programdata: Pubkey | None = None) -> Instruction:
    """0 Initialize — accounts: admin [w, s] (upgrade authority; pays), config [w], programdata [],
    System program. Data: [0] disc, [1] bump, [2..34] governance, [34..66] registry program,
    [66..74] validity seconds i64."""
    derived, derived_bump = config_address(program_id)
    data = (bytes([IX_INITIALIZE, derived_bump if bump is None else bump]) + bytes(governance)
            + bytes(registry_program) + struct.pack("<q", validity_seconds))
    return Instruction(program_id, data, [
        AccountMeta(admin, True, True),
        AccountMeta(config or derived, False, True),
        AccountMeta(programdata or programdata_address(program_id), False, False),
        AccountMeta(SYSTEM_PROGRAM_ID, False, False),
    ])


def issue(program_id: Pubkey, owner: Pubkey, meter: Pubkey, index: int, to_wh: int, *,
          mark: Pubkey | None = None, mark_bump: int | None = None, certificate: Pubkey | None = None,
          certificate_bump: int | None = None, config: Pubkey | None = None,
          owner_signs: bool = True) -> Instruction:
    """1 Issue — accounts: owner [w, s] (meter owner; pays), config [], meter [] (registry meter),
    mark [w], certificate [w] (index = the mark's next_index, 0 for a meter's first), System program.
    Data: [0] disc, [1] mark bump, [2] certificate bump, [3..11] to_wh u64."""
    derived_mark, derived_mark_bump = mark_address(program_id, meter)
    derived_cert, derived_cert_bump = certificate_address(program_id, meter, index)
    data = struct.pack("<BBBQ", IX_ISSUE, derived_mark_bump if mark_bump is None else mark_bump,
                       derived_cert_bump if certificate_bump is None else certificate_bump, to_wh)
    return Instruction(program_id, data, [
        AccountMeta(owner, owner_signs, True),
        AccountMeta(config or config_address(program_id)[0], False, False),
        AccountMeta(meter, False, False),
        AccountMeta(mark or derived_mark, False, True),
        AccountMeta(certificate or derived_cert, False, True),
        AccountMeta(SYSTEM_PROGRAM_ID, False, False),
    ])


def _governed(program_id: Pubkey, data: bytes, governance: Pubkey, certificate: Pubkey, config: Pubkey | None,
              signs: bool) -> Instruction:
    return Instruction(program_id, data, [
        AccountMeta(governance, signs, False),
        AccountMeta(config or config_address(program_id)[0], False, False),
        AccountMeta(certificate, False, True),
    ])


def validate(program_id: Pubkey, governance: Pubkey, certificate: Pubkey, *, config: Pubkey | None = None,
             governance_signs: bool = True) -> Instruction:
    """2 Validate — accounts: governance [s], config [], certificate [w]. Data: [0] disc."""
    return _governed(program_id, bytes([IX_VALIDATE]), governance, certificate, config, governance_signs)


def revoke(program_id: Pubkey, governance: Pubkey, certificate: Pubkey, reason: int, *,
           config: Pubkey | None = None, governance_signs: bool = True) -> Instruction:
    """4 Revoke — accounts: governance [s], config [], certificate [w]. Data: [0] disc, [1..3] reason u16."""
    return _governed(program_id, struct.pack("<BH", IX_REVOKE, reason), governance, certificate, config,
                     governance_signs)


def retire(program_id: Pubkey, holder: Pubkey, certificate: Pubkey, *, holder_signs: bool = True) -> Instruction:
    """3 Retire — accounts: holder [s], certificate [w]. Data: [0] disc."""
    return Instruction(program_id, bytes([IX_RETIRE]),
                       [AccountMeta(holder, holder_signs, False), AccountMeta(certificate, False, True)])


def expire(program_id: Pubkey, certificate: Pubkey) -> Instruction:
    """5 Expire (anyone) — accounts: certificate [w]. Data: [0] disc."""
    return Instruction(program_id, bytes([IX_EXPIRE]), [AccountMeta(certificate, False, True)])


def transfer(program_id: Pubkey, holder: Pubkey, certificate: Pubkey, new_holder: Pubkey, *,
             holder_signs: bool = True) -> Instruction:
    """6 Transfer — accounts: holder [s], certificate [w]. Data: [0] disc, [1..33] new holder."""
    return Instruction(program_id, bytes([IX_TRANSFER]) + bytes(new_holder),
                       [AccountMeta(holder, holder_signs, False), AccountMeta(certificate, False, True)])
