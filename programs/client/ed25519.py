"""The Ed25519 precompile instruction, built so that on-chain introspection can trust it.

Every offset points into the instruction's own data (instruction index 0xFFFF), which is what
``gtx_find_ed25519_verification`` (programs/include/gtx/introspection.h) requires. Layout for one
signature: u8 count = 1, u8 padding, 7 x u16 offsets, public key [16..48], signature [48..112],
message [112..].
"""

from __future__ import annotations

import struct

from solders.instruction import Instruction
from solders.pubkey import Pubkey

__all__ = ["ED25519_PROGRAM_ID", "THIS_INSTRUCTION", "ed25519_verify_instruction"]

ED25519_PROGRAM_ID = Pubkey.from_string("Ed25519SigVerify111111111111111111111111111")
THIS_INSTRUCTION = 0xFFFF
_HEADER = 2 + 14


def ed25519_verify_instruction(public_key: bytes, message: bytes, signature: bytes) -> Instruction:
    """An instruction that makes the whole transaction fail unless ``signature`` verifies."""
    if len(public_key) != 32 or len(signature) != 64:
        raise ValueError("Ed25519 public keys are 32 bytes and signatures 64 bytes")
    if len(message) > 0xFFFF - _HEADER - 96:
        raise ValueError(f"message of {len(message)} bytes does not fit one instruction")
    pk_off, sig_off, msg_off = _HEADER, _HEADER + 32, _HEADER + 96
    offsets = struct.pack(
        "<BBHHHHHHH", 1, 0, sig_off, THIS_INSTRUCTION, pk_off, THIS_INSTRUCTION, msg_off, len(message),
        THIS_INSTRUCTION,
    )
    return Instruction(ED25519_PROGRAM_ID, offsets + public_key + signature + message, [])
