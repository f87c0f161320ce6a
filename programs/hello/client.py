"""Instruction builders for the hello program (mirror of programs/hello/src/instructions.h).

Greeting account (PDA of [b"greeting", authority]), 50 bytes: [0] version (2: at the canonical bump), [1] bump,
[2..34] authority, [34..42] count u64 LE, [42..50] total u64 LE.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from solders.instruction import AccountMeta, Instruction
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from solders.sysvar import INSTRUCTIONS

from programs.client.chain import TxResult
from programs.client.errors import ProgramErrors
from programs.client.events import U64, Key, ProgramEvents, event

__all__ = ["EVENTS", "GREETING_LEN", "HELLO_ERRORS", "Greeted", "Greeting", "GreetingCreated", "decode_events",
           "greet", "greeting_address", "initialize", "verify_signature"]

GREETING_SEED = b"greeting"
GREETING_LEN = 50
IX_INITIALIZE, IX_GREET, IX_VERIFY_SIGNATURE = 0, 1, 2

HELLO_ERRORS = ProgramErrors("hello", {
    1: "UnknownInstruction",
    2: "GreetingWrongSize",
    3: "WrongAuthority",
    4: "NonCanonicalBump",
})


@dataclass(frozen=True)
class Greeting:
    version: int
    bump: int
    authority: Pubkey
    count: int
    total: int

    @classmethod
    def decode(cls, data: bytes) -> Greeting:
        if len(data) != GREETING_LEN:
            raise ValueError(f"greeting account is {len(data)} bytes, expected {GREETING_LEN}")
        version, bump, authority, count, total = struct.unpack("<BB32sQQ", data)
        return cls(version, bump, Pubkey.from_bytes(authority), count, total)


@event("GreetingCreated")
@dataclass(frozen=True)
class GreetingCreated:
    greeting: Key
    authority: Key


@event("Greeted")
@dataclass(frozen=True)
class Greeted:
    greeting: Key
    authority: Key
    amount: U64
    count: U64
    total: U64


EVENTS = ProgramEvents("hello", [GreetingCreated, Greeted])


def decode_events(result: TxResult, program_id: Pubkey) -> list[GreetingCreated | Greeted]:
    """The hello program's events in a transaction, in order."""
    return [e.event for e in result.decode_events({program_id: EVENTS}).complete()]


def greeting_address(program_id: Pubkey, authority: Pubkey) -> tuple[Pubkey, int]:
    return Pubkey.find_program_address([GREETING_SEED, bytes(authority)], program_id)


def initialize(program_id: Pubkey, authority: Pubkey, *, greeting: Pubkey | None = None,
               bump: int | None = None) -> Instruction:
    """0 Initialize — accounts: authority [w, s], greeting [w], System program. Data: [0, bump]."""
    derived, derived_bump = greeting_address(program_id, authority)
    return Instruction(
        program_id,
        bytes([IX_INITIALIZE, derived_bump if bump is None else bump]),
        [
            AccountMeta(authority, True, True),
            AccountMeta(greeting or derived, False, True),
            AccountMeta(SYSTEM_PROGRAM_ID, False, False),
        ],
    )


def greet(program_id: Pubkey, authority: Pubkey, amount: int, *, greeting: Pubkey | None = None,
          authority_signs: bool = True) -> Instruction:
    """1 Greet — accounts: authority [s], greeting [w]. Data: [1, amount u64 LE]."""
    return Instruction(
        program_id,
        struct.pack("<BQ", IX_GREET, amount),
        [
            AccountMeta(authority, authority_signs, False),
            AccountMeta(greeting or greeting_address(program_id, authority)[0], False, True),
        ],
    )


def verify_signature(program_id: Pubkey, public_key: bytes, message: bytes, *,
                     instructions_sysvar: Pubkey = INSTRUCTIONS) -> Instruction:
    """2 VerifySignature — accounts: Instructions sysvar. Data: [2, pubkey[32], message]."""
    return Instruction(program_id, bytes([IX_VERIFY_SIGNATURE]) + public_key + message,
                       [AccountMeta(instructions_sysvar, False, False)])
