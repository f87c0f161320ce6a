"""Gateway identity shown to people: the short fingerprint of an Ed25519 public key.

Printed by ``gridtokenx gateway keygen`` on the device and by ``gridtokenx backend add-gateway`` when
commissioning, so a technician can compare the two at a glance: the first 8 bytes of SHA-256 over
the 32-byte public key, as four groups of four hex digits (``3f2a:9c1b:77d0:e4a5``).
"""

from __future__ import annotations

import hashlib

__all__ = ["fingerprint"]


def fingerprint(public_key: bytes) -> str:
    digest = hashlib.sha256(bytes(public_key)).hexdigest()[:16]
    return ":".join(digest[i : i + 4] for i in range(0, 16, 4))
