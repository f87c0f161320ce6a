"""Encodings at the API's edge: base58 for keys and signatures (Solana's convention), base64 for
transactions and messages (what wallets' signTransaction takes and returns)."""

from __future__ import annotations

import base64
import binascii

from solders.signature import Signature

from backend.api.errors import ApiError

__all__ = ["b64", "decode_signature", "unb64"]


def decode_signature(text: str) -> bytes:
    """A 64-byte Ed25519 signature in base58, or base64."""
    try:
        return bytes(Signature.from_string(text))
    except ValueError:
        pass
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 64:
        raise ApiError(400, "bad_signature", "signature must be 64 bytes in base58 or base64")
    return raw


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "bad_encoding", f"{what} must be base64") from None
