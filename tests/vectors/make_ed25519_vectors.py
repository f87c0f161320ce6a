"""Write tests/vectors/ed25519-edge-cases.json: signatures over v1 reading bytes that no honest signer
makes, and the verdict the chain's Ed25519 precompile gives each (ed25519-dalek ``verify_strict``).

    python tests/vectors/make_ed25519_vectors.py

Every case is built with tests/support/ed25519_ref.py (plain RFC 8032 arithmetic). The cases where
verifiers are known to differ: small-order public keys and R (accepted by a plain cofactorless check,
refused by verify_strict and libsodium), non-canonical S, R and A encodings, and mixed-order keys
(a key with a small-order component: verifies exactly when the challenge is a multiple of 8, for
every cofactorless verifier). "expect" is the precompile's verdict; tests/backend/test_ingest_ed25519.py
checks it against LiteSVM's precompile and the backend's verifier against it.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from gridtokenx.reading import Reading, encode
from tests.support.ed25519_ref import (
    IDENTITY,
    B,
    L,
    P,
    add,
    challenge,
    compress,
    mul,
    scalar_from_seed,
    sign_with_scalar,
    small_order_points,
)

OUT = Path(__file__).with_name("ed25519-edge-cases.json")
SEED = hashlib.sha256(b"gateway-edge").digest()


def _reading(seq: int) -> bytes:
    return encode(Reading(meter_id="edge-1", seq=seq, timestamp_ms=1_764_072_000_000, import_wh=1000, export_wh=0))


def _message_where(ok: Any, start: int = 1) -> bytes:
    """The first reading (by seq) whose bytes satisfy ``ok``."""
    seq = start
    while not ok(_reading(seq)):
        seq += 1
    return _reading(seq)


def cases() -> list[dict[str, Any]]:
    a, prefix = scalar_from_seed(SEED)
    public = compress(mul(a, B))
    torsion = small_order_points()
    identity = compress(IDENTITY)
    out: list[dict[str, Any]] = []

    def case(name: str, why: str, pk: bytes, msg: bytes, sig: bytes, expect: str) -> None:
        out.append(
            {"name": name, "why": why, "public_key_hex": pk.hex(), "message_hex": msg.hex(),
             "signature_hex": sig.hex(), "expect": expect}
        )

    msg = _reading(1)
    honest = sign_with_scalar(a, prefix, public, msg)
    case("honest", "an ordinary signature: every verifier accepts it", public, msg, honest, "accept")
    s = int.from_bytes(honest[32:], "little")
    case("s_plus_l", "S + L: the same signature with a non-canonical scalar (malleability)", public, msg,
         honest[:32] + int.to_bytes(s + L, 32, "little"), "reject")
    case("s_plus_8l", "S + 8L, still below 2^256", public, msg, honest[:32] + int.to_bytes(s + 8 * L, 32, "little"),
         "reject")
    case("s_high_bit", "S with the top bit set", public, msg, honest[:32] + int.to_bytes(s | (1 << 255), 32, "little"),
         "reject")
    # R = identity: S = k·a satisfies the cofactorless equation [S]B = R + [k]A.
    k = challenge(identity, public, msg)
    case("r_identity", "R is the identity (small order), S = k·a: a plain check accepts it", public, msg,
         identity + int.to_bytes(k * a % L, 32, "little"), "reject")
    # R = the identity in a non-canonical encoding (y = p + 1).
    r_nc = int.to_bytes(P + 1, 32, "little")
    k = challenge(r_nc, public, msg)
    case("r_identity_noncanonical", "R encodes the identity as y = p + 1", public, msg,
         r_nc + int.to_bytes(k * a % L, 32, "little"), "reject")
    # Small-order public keys with R = identity and S = 0: valid for a plain check whenever [k]A is the
    # identity (always for A = identity, for a multiple-of-order challenge otherwise).
    for i, t in enumerate(torsion):
        pk = compress(t)
        order = next(n for n in (1, 2, 4, 8) if compress(mul(n, t)) == identity)
        m = _message_where(lambda b, pk=pk, order=order: challenge(identity, pk, b) % order == 0)
        case(f"a_small_order_{i}", f"public key of order {order}, R = identity, S = 0", pk, m,
             identity + bytes(32), "reject")
    for name, pk in (
        ("a_identity_noncanonical", int.to_bytes(P + 1, 32, "little")),
        ("a_identity_negative_zero", int.to_bytes(1 | (1 << 255), 32, "little")),
        ("a_order2_noncanonical", int.to_bytes(P - 1 + P, 32, "little") if P - 1 + P < 2**255 else
         int.to_bytes((P - 1) | (1 << 255), 32, "little")),
    ):
        m = _message_where(lambda b, pk=pk: challenge(identity, pk, b) % 8 == 0)
        case(name, "a small-order public key in a non-canonical encoding, R = identity, S = 0", pk, m,
             identity + bytes(32), "reject")
    # Mixed-order key: A = aB + T (T of order 8). A signature by a verifies under A exactly when
    # [k]T is the identity, i.e. k ≡ 0 (mod 8), for every cofactorless verifier.
    mixed = compress(add(mul(a, B), torsion[1]))
    m = _message_where(lambda b: challenge(compress(mul((int.from_bytes(hashlib.sha512(prefix + b).digest(),
                                                                          "little") % L), B)), mixed, b) % 8 == 0)
    case("mixed_order_key_k_0_mod_8", "key with an order-8 component; challenge ≡ 0 mod 8: accepted by "
         "every cofactorless verifier", mixed, m, sign_with_scalar(a, prefix, mixed, m), "accept")
    m = _message_where(lambda b: challenge(compress(mul((int.from_bytes(hashlib.sha512(prefix + b).digest(),
                                                                          "little") % L), B)), mixed, b) % 8 != 0)
    case("mixed_order_key_k_not_0_mod_8", "the same key, challenge not ≡ 0 mod 8", mixed, m,
         sign_with_scalar(a, prefix, mixed, m), "reject")
    # A public key that is not a point at all.
    bad = next(int.to_bytes(y, 32, "little") for y in range(2, 100) if _not_on_curve(y))
    case("a_not_on_curve", "public key bytes that decode to no curve point", bad, msg, honest, "reject")
    return out


def _not_on_curve(y: int) -> bool:
    from tests.support.ed25519_ref import decompress

    return decompress(int.to_bytes(y, 32, "little")) is None


def main() -> None:
    OUT.write_text(json.dumps({"format": "ed25519 edge cases over gridtokenx reading v1 bytes",
                               "cases": cases()}, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
