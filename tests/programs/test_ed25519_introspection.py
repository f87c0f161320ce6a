"""gtx_find_ed25519_verification through hello's VerifySignature: it accepts exactly a precompile check of
this key over these bytes in the same transaction, and nothing an attacker can arrange instead."""

from __future__ import annotations

import struct

import pytest
from nacl.signing import SigningKey
from solders.account import Account
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from programs.client import ED25519_PROGRAM_ID, LiteSVMChain, ed25519_verify_instruction
from programs.hello import client as hello

pytestmark = pytest.mark.chain

HELLO_ID = Pubkey.from_string("He11o11111111111111111111111111111111111111")
MESSAGE = b"GTX1 meter 42 seq 7: 1234 Wh"


@pytest.fixture
def meter() -> SigningKey:
    return SigningKey(bytes(range(32)))


def _signed(key: SigningKey, message: bytes) -> Instruction:
    return ed25519_verify_instruction(bytes(key.verify_key), message, key.sign(message).signature)


async def test_accepts_a_verified_signature_over_the_bytes(chain: LiteSVMChain, payer: Keypair,
                                                           meter: SigningKey) -> None:
    ixs = [_signed(meter, MESSAGE), hello.verify_signature(HELLO_ID, bytes(meter.verify_key), MESSAGE)]
    result = await chain.send_transaction(ixs, [payer])
    result.raise_for_failure()
    assert "Program log: hello: Ed25519 verification found" in result.logs


async def test_accepts_the_check_anywhere_in_the_transaction(chain: LiteSVMChain, payer: Keypair,
                                                             meter: SigningKey) -> None:
    # Precompiles are verified for the whole transaction, so the check may also follow the program.
    other = SigningKey(bytes(32))
    ixs = [hello.verify_signature(HELLO_ID, bytes(meter.verify_key), MESSAGE), _signed(other, b"another"),
           _signed(meter, MESSAGE)]
    (await chain.send_transaction(ixs, [payer])).raise_for_failure()


@pytest.mark.parametrize("case", ["different_key", "different_message", "prefix_of_message", "no_ed25519"])
async def test_refuses_what_was_not_verified(chain: LiteSVMChain, payer: Keypair, meter: SigningKey,
                                             case: str) -> None:
    expected_key, expected_msg = bytes(meter.verify_key), MESSAGE
    ixs = [_signed(meter, MESSAGE)]
    if case == "different_key":
        expected_key = bytes(SigningKey(bytes(32)).verify_key)
    elif case == "different_message":
        expected_msg = MESSAGE.replace(b"1234", b"9234")
    elif case == "prefix_of_message":
        expected_msg = MESSAGE[:-1]
    else:
        ixs = []
    result = await chain.send_transaction([*ixs, hello.verify_signature(HELLO_ID, expected_key, expected_msg)],
                                          [payer])
    assert result.failure is not None
    assert (result.failure.instruction_index, result.failure.error) == (len(ixs), "MissingRequiredSignature")
    assert "Program log: no Ed25519 verification of this key over this message in the transaction" in result.logs


async def test_a_bad_signature_fails_the_whole_transaction(chain: LiteSVMChain, payer: Keypair,
                                                           meter: SigningKey) -> None:
    signature = bytearray(meter.sign(MESSAGE).signature)
    signature[0] ^= 1
    bad = ed25519_verify_instruction(bytes(meter.verify_key), MESSAGE, bytes(signature))
    result = await chain.send_transaction(
        [bad, hello.verify_signature(HELLO_ID, bytes(meter.verify_key), MESSAGE)], [payer])
    assert result.failure is not None and result.failure.instruction_index == 0


async def test_refuses_a_key_taken_from_another_instruction(chain: LiteSVMChain, payer: Keypair,
                                                            meter: SigningKey) -> None:
    # The precompile entry reads its public key from instruction 1 (hello's own data, where the key sits
    # at offset 1). The signature is good, but the key was not in the Ed25519 instruction's data, so an
    # attacker could point it at bytes they control: the helper must not accept it.
    good = _signed(meter, MESSAGE)
    data = bytearray(bytes(good.data))
    struct.pack_into("<HH", data, 2 + 4, 1, 1)  # public_key_offset = 1, public_key_instruction_index = 1
    forged = Instruction(ED25519_PROGRAM_ID, bytes(data), [])
    ixs = [forged, hello.verify_signature(HELLO_ID, bytes(meter.verify_key), MESSAGE)]
    result = await chain.send_transaction(ixs, [payer])
    assert result.failure is not None
    assert (result.failure.instruction_index, result.failure.error) == (1, "MissingRequiredSignature")


async def test_refuses_an_account_posing_as_the_instructions_sysvar(chain: LiteSVMChain, payer: Keypair,
                                                                   meter: SigningKey) -> None:
    # An account holding a perfect Instructions-sysvar image claiming a verification that never happened.
    key = bytes(meter.verify_key)
    ed_data = bytes(_signed(meter, MESSAGE).data)
    ix_bytes = struct.pack("<H", 0) + bytes(ED25519_PROGRAM_ID) + struct.pack("<H", len(ed_data)) + ed_data
    image = struct.pack("<HH", 1, 4) + ix_bytes + struct.pack("<H", 0)
    fake = Pubkey.new_unique()
    chain.svm.set_account(fake, Account(10**7, image, HELLO_ID, False, 0))
    ix = hello.verify_signature(HELLO_ID, key, MESSAGE, instructions_sysvar=fake)
    result = await chain.send_transaction([ix], [payer])
    assert result.failure is not None and result.failure.error == "UnsupportedSysvar"
    assert "Program log: expected the Instructions sysvar, got" in result.logs
