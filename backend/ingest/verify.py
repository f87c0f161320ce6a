"""Ed25519 verification exactly as strict as the chain's: a reading the backend stores is one the
minting program's Ed25519 precompile check accepts, or minting it later would fail.

The chain's Ed25519 precompile verifies with ed25519-dalek's ``verify_strict`` (agave, with the
``ed25519_precompile_verify_strict`` feature active, as it is on mainnet and in LiteSVM). The backend
verifies with the same library through ``solders`` (``Signature.verify`` is ``verify_strict``), which
is also the fastest verifier installed here (about 42 µs a signature on this machine, libsodium 55 µs).
What strict verification refuses beyond the plain cofactorless equation: a non-canonical S (S ≥ L),
a small-order R or public key (every encoding of the eight torsion points). tests/vectors/
ed25519-edge-cases.json holds one signature of each kind that the plain equation accepts;
tests/backend/test_ingest_ed25519.py shows that LiteSVM's precompile, this verifier and libsodium
give the same verdict on every one.

One class is left where cofactorless verifiers could in principle disagree with a cofactored one:
public keys with a small-order component (mixed order). No honest key generator makes them, and
:func:`usable_public_key` refuses them — as well as non-canonical and small-order encodings — when a
gateway is commissioned, so only prime-order keys are ever used to verify.
"""

from __future__ import annotations

from collections.abc import Callable

from nacl.bindings import crypto_core_ed25519_is_valid_point
from solders.pubkey import Pubkey
from solders.signature import Signature

__all__ = ["Verifier", "usable_public_key", "verifier"]

Verifier = Callable[[bytes, bytes], bool]  # (signed bytes, signature) -> verdict


def usable_public_key(public_key: bytes) -> bool:
    """A canonical encoding of a point of the prime-order subgroup, not the identity: what every
    honest key generator produces (libsodium's ``crypto_core_ed25519_is_valid_point``)."""
    return (
        isinstance(public_key, bytes) and len(public_key) == 32 and bool(crypto_core_ed25519_is_valid_point(public_key))
    )


def verifier(public_key: bytes) -> Verifier:
    """A function checking signatures by ``public_key``; one per key, reused for every reading."""
    pk = Pubkey(public_key)

    def verify(data: bytes, signature: bytes) -> bool:
        # Signature() takes exactly 64 bytes; verify is ed25519-dalek's verify_strict.
        return len(signature) == 64 and Signature(signature).verify(pk, data)

    return verify


PAIR = 60 + 64  # one (reading, signature) in the blobs handed to verification processes


def verify_pairs(public_key: bytes, blob: bytes) -> bytes:
    """Verdicts (1 or 0, one byte each) for consecutive 124-byte (reading, signature) pairs — the work
    a verification process does (``[ingest] verify_processes``): one call per chunk of a message, so
    the cost of crossing processes is a few bytes per reading."""
    pk = Pubkey(public_key)
    new_signature = Signature
    out = bytearray(len(blob) // PAIR)
    for i in range(len(out)):
        o = i * PAIR
        out[i] = new_signature(blob[o + 60 : o + PAIR]).verify(pk, blob[o : o + 60])
    return bytes(out)
