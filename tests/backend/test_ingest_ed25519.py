"""The verifier ingest uses (backend.ingest.verify: solders, ed25519-dalek verify_strict) refuses every
invalid vector in tests/vectors and every Ed25519 edge case, exactly as the chain's precompile does.

tests/vectors/ed25519-edge-cases.json holds signatures no honest signer makes: non-canonical S,
small-order R and public keys (each of the eight torsion points, and non-canonical encodings),
mixed-order keys. Most of them pass the plain cofactorless equation (checked here with the reference
arithmetic of tests/support/ed25519_ref.py), so they do tell a strict verifier from a plain one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from nacl.bindings import crypto_sign_open
from nacl.signing import SigningKey

from backend.ingest.pipeline import _check_entries
from backend.ingest.verify import usable_public_key, verifier
from gridtokenx.batch import BatchEntry, reading_fields
from gridtokenx.reading import decode
from tests.support.ed25519_ref import verify_plain

VECTORS = Path(__file__).parents[1] / "vectors"
EDGE = json.loads((VECTORS / "ed25519-edge-cases.json").read_text())["cases"]
READINGS = json.loads((VECTORS / "reading-v1.json").read_text())


def _case(c: dict[str, Any]) -> tuple[bytes, bytes, bytes]:
    return bytes.fromhex(c["public_key_hex"]), bytes.fromhex(c["message_hex"]), bytes.fromhex(c["signature_hex"])


def _libsodium(pk: bytes, message: bytes, signature: bytes) -> bool:
    try:
        crypto_sign_open(signature + message, pk)
    except Exception:  # BadSignatureError, or ValueError for a key libsodium will not use
        return False
    return True


@pytest.mark.parametrize("case", EDGE, ids=[c["name"] for c in EDGE])
def test_the_verifier_gives_the_precompiles_verdict_on_every_edge_case(case: dict[str, Any]) -> None:
    pk, message, signature = _case(case)
    expected = case["expect"] == "accept"
    assert verifier(pk)(message, signature) is expected
    assert _libsodium(pk, message, signature) is expected  # the verifier used before: no verdict changed
    # Through ingest's hot path, as the reading it is (the claims say what the bytes say).
    entry = BatchEntry(message, signature, reading_fields(decode(message)))
    (_, row, why), = _check_entries([entry], pk, None, "gw", 1, {})
    assert (row is not None, why) == ((True, None) if expected else (False, "bad_signature"))


def test_the_edge_cases_separate_a_strict_verifier_from_a_plain_one() -> None:
    passes_plain = {c["name"] for c in EDGE if c["expect"] == "reject" and verify_plain(*_case(c))}
    assert {"r_identity", "a_small_order_0", "a_small_order_1", "a_identity_noncanonical"} <= passes_plain
    assert len(passes_plain) >= 12


def test_commissioning_accepts_only_keys_of_the_prime_order_subgroup() -> None:
    keys = {c["name"]: _case(c)[0] for c in EDGE}
    assert usable_public_key(keys["honest"])
    for name, pk in keys.items():
        if name.startswith(("a_", "mixed_order")):
            assert not usable_public_key(pk), name
    assert all(usable_public_key(bytes.fromhex(v["public_key_hex"])) for v in READINGS["valid"])
    assert not usable_public_key(b"\x01" * 31)


@pytest.mark.parametrize("vec", READINGS["invalid"], ids=[v["name"] for v in READINGS["invalid"]])
def test_every_invalid_reading_vector_is_refused_with_its_code_though_validly_signed(vec: dict[str, Any]) -> None:
    key = SigningKey(b"\x31" * 32)
    data = bytes.fromhex(vec["bytes_hex"])
    entry = BatchEntry(data, key.sign(data).signature, {"meter_id": "m1", "seq": 1})
    (answer_key, row, why), = _check_entries([entry], bytes(key.verify_key), None, "gw", 1, {})
    assert row is None and why == f"format:{vec['error']}"
    assert answer_key == ("m1", 1)  # answered by its claims, so the gateway can let it go


@pytest.mark.parametrize("vec", READINGS["valid"], ids=[v["name"] for v in READINGS["valid"]])
def test_every_valid_reading_vector_verifies_and_a_flipped_bit_does_not(vec: dict[str, Any]) -> None:
    pk, data, sig = (bytes.fromhex(vec[k]) for k in ("public_key_hex", "bytes_hex", "signature_hex"))
    verify = verifier(pk)
    assert verify(data, sig)
    for i in range(0, 64, 7):
        bad = bytearray(sig)
        bad[i] ^= 0x01
        assert not verify(data, bytes(bad))
    assert not verify(data[:-1] + bytes([data[-1] ^ 1]), sig)
    assert not verify(data, sig[:63]) and not verify(data, sig + b"\0")


def test_the_edge_case_file_is_what_its_generator_writes() -> None:
    from tests.vectors.make_ed25519_vectors import cases

    assert cases() == EDGE


@pytest.mark.chain
async def test_the_chains_precompile_gives_the_recorded_verdicts() -> None:
    from solders.keypair import Keypair

    from programs.client import LiteSVMChain, ed25519_verify_instruction

    chain = LiteSVMChain()
    payer = Keypair()
    await chain.fund(payer.pubkey(), 10**10)
    for case in EDGE:
        pk, message, signature = _case(case)
        result = await chain.send_transaction([ed25519_verify_instruction(pk, message, signature)], [payer])
        assert (result.failure is None) is (case["expect"] == "accept"), case["name"]
