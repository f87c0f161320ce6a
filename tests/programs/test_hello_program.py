"""The hello program in LiteSVM: the happy path and every refusal its checks promise."""

from __future__ import annotations

import struct

import pytest
from program_testkit import invalid_bump
from solders.account import Account
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM_ID

from programs.client import LiteSVMChain, TransactionFailed
from programs.hello import client as hello

pytestmark = pytest.mark.chain

HELLO_ID = Pubkey.from_string("He11o11111111111111111111111111111111111111")


def _greeting_bytes(authority: Pubkey, bump: int, count: int = 0, total: int = 0) -> bytes:
    return struct.pack("<BB32sQQ", 2, bump, bytes(authority), count, total)


async def _initialized(chain: LiteSVMChain, payer: Keypair) -> Pubkey:
    (await chain.send_transaction([hello.initialize(HELLO_ID, payer.pubkey())], [payer])).raise_for_failure()
    return hello.greeting_address(HELLO_ID, payer.pubkey())[0]


async def test_initialize_creates_the_pda_through_a_signed_cpi(chain: LiteSVMChain, payer: Keypair) -> None:
    address, bump = hello.greeting_address(HELLO_ID, payer.pubkey())
    result = await chain.send_transaction([hello.initialize(HELLO_ID, payer.pubkey())], [payer])
    result.raise_for_failure()
    assert f"Program {SYSTEM_PROGRAM_ID} invoke [2]" in result.logs
    assert "Program log: hello: greeting created" in result.logs
    account = await chain.get_account(address)
    assert account is not None and account.owner == HELLO_ID
    assert account.lamports == await chain.minimum_balance(hello.GREETING_LEN)
    assert hello.Greeting.decode(bytes(account.data)) == hello.Greeting(2, bump, payer.pubkey(), 0, 0)


async def test_greet_counts_logs_and_emits_an_event(chain: LiteSVMChain, payer: Keypair) -> None:
    address = await _initialized(chain, payer)
    for amount in (5, 7):
        result = (await chain.send_transaction([hello.greet(HELLO_ID, payer.pubkey(), amount)], [payer]))
        result.raise_for_failure()
    assert "Program log: hello, world" in result.logs
    assert "Program log: 0x2, 0xc, 0x7, 0x0, 0x0" in result.logs
    assert hello.decode_events(result, HELLO_ID) == [hello.Greeted(address, payer.pubkey(), 7, 2, 12)]
    # One field: the 9-byte header (tag, version 1), then the fields.
    [[data]] = result.events()
    assert data[:9] == hello.Greeted.layout.tag + b"\x01" and len(data) == 97
    assert struct.unpack_from("<QQQ", data, 73) == (7, 2, 12)
    assert 0 < result.compute_units < 10_000
    account = await chain.get_account(address)
    assert account is not None
    greeting = hello.Greeting.decode(bytes(account.data))
    assert (greeting.count, greeting.total) == (2, 12)


async def test_greet_without_the_authority_signature_is_refused(chain: LiteSVMChain, payer: Keypair) -> None:
    address = await _initialized(chain, payer)
    other = Keypair()
    await chain.fund(other.pubkey(), 10**9)
    ix = hello.greet(HELLO_ID, payer.pubkey(), 1, authority_signs=False)
    result = await chain.send_transaction([ix], [other])
    assert result.failure is not None
    assert hello.HELLO_ERRORS.name(result.failure) == "MissingRequiredSignature"
    assert "Program log: missing required signature of" in result.logs
    assert f"Program log: {payer.pubkey()}" in result.logs  # the log names the account
    account = await chain.get_account(address)
    assert account is not None and hello.Greeting.decode(bytes(account.data)).count == 0


async def test_greeting_owned_by_another_program_is_refused(chain: LiteSVMChain, payer: Keypair) -> None:
    address, bump = hello.greeting_address(HELLO_ID, payer.pubkey())
    # The same bytes a real greeting would hold, at the right address, but owned by someone else.
    chain.svm.set_account(address, Account(10**7, _greeting_bytes(payer.pubkey(), bump), Pubkey.new_unique(),
                                           False, 0))
    result = await chain.send_transaction([hello.greet(HELLO_ID, payer.pubkey(), 1)], [payer])
    assert result.failure is not None and result.failure.error == "InvalidAccountOwner"
    assert "Program log: account has the wrong owner:" in result.logs


async def test_forged_pda_is_refused(chain: LiteSVMChain, payer: Keypair) -> None:
    _, bump = hello.greeting_address(HELLO_ID, payer.pubkey())
    # A program-owned account with valid greeting bytes that is not the PDA of ["greeting", authority].
    forged = Pubkey.new_unique()
    chain.svm.set_account(forged, Account(10**7, _greeting_bytes(payer.pubkey(), bump), HELLO_ID, False, 0))
    result = await chain.send_transaction([hello.greet(HELLO_ID, payer.pubkey(), 1, greeting=forged)], [payer])
    assert result.failure is not None and result.failure.error == "InvalidSeeds"
    assert "Program log: account is not the expected program address:" in result.logs


@pytest.mark.parametrize("case", ["non_pda_address", "wrong_bump"])
async def test_initialize_refuses_a_forged_address_or_bump(chain: LiteSVMChain, payer: Keypair,
                                                           case: str) -> None:
    if case == "non_pda_address":
        ix = hello.initialize(HELLO_ID, payer.pubkey(), greeting=Pubkey.new_unique())
    else:
        ix = hello.initialize(HELLO_ID, payer.pubkey(), bump=invalid_bump([b"greeting", bytes(payer.pubkey())],
                                                                          HELLO_ID))
    result = await chain.send_transaction([ix], [payer])
    assert result.failure is not None and result.failure.error == "InvalidSeeds"


async def test_program_custom_errors_map_to_names(chain: LiteSVMChain, payer: Keypair) -> None:
    await _initialized(chain, payer)
    intruder = Keypair()
    await chain.fund(intruder.pubkey(), 10**9)
    # The intruder signs, but for a greeting whose stored authority is the payer.
    ix = hello.greet(HELLO_ID, intruder.pubkey(), 1,
                     greeting=hello.greeting_address(HELLO_ID, payer.pubkey())[0])
    result = await chain.send_transaction([ix], [intruder])
    assert result.failure is not None and result.failure.custom_code == 3
    assert hello.HELLO_ERRORS.name(result.failure) == "WrongAuthority"
    unknown = await chain.send_transaction([Instruction(HELLO_ID, bytes([9]), [])], [payer])
    assert unknown.failure is not None and hello.HELLO_ERRORS.name(unknown.failure) == "UnknownInstruction"
    with pytest.raises(TransactionFailed, match="Custom\\(1\\)"):
        unknown.raise_for_failure()


async def test_refusals_of_bad_input(chain: LiteSVMChain, payer: Keypair) -> None:
    address = await _initialized(chain, payer)
    again = await chain.send_transaction([hello.initialize(HELLO_ID, payer.pubkey())], [payer])
    assert again.failure is not None and again.failure.error == "AccountAlreadyInitialized"
    (await chain.send_transaction([hello.greet(HELLO_ID, payer.pubkey(), 1)], [payer])).raise_for_failure()
    overflow = await chain.send_transaction([hello.greet(HELLO_ID, payer.pubkey(), 2**64 - 1)], [payer])
    assert overflow.failure is not None and overflow.failure.error == "ArithmeticOverflow"
    short = Instruction(HELLO_ID, bytes([1, 2, 3]), hello.greet(HELLO_ID, payer.pubkey(), 0).accounts)
    bad_data = await chain.send_transaction([short], [payer])
    assert bad_data.failure is not None and bad_data.failure.error == "InvalidInstructionData"
    too_few = Instruction(HELLO_ID, struct.pack("<BQ", 1, 1), [AccountMeta(payer.pubkey(), True, False)])
    missing = await chain.send_transaction([too_few], [payer])
    assert missing.failure is not None and missing.failure.error == "NotEnoughAccountKeys"
    # A System program impostor in Initialize's third slot.
    other = Keypair()
    await chain.fund(other.pubkey(), 10**9)
    ix = hello.initialize(HELLO_ID, other.pubkey())
    ix = Instruction(HELLO_ID, bytes(ix.data), [*ix.accounts[:2], AccountMeta(Pubkey.new_unique(), False, False)])
    impostor = await chain.send_transaction([ix], [other])
    assert impostor.failure is not None and impostor.failure.error == "IncorrectProgramId"
    account = await chain.get_account(address)
    assert account is not None and hello.Greeting.decode(bytes(account.data)).total == 1


async def test_duplicate_accounts_see_the_same_view(chain: LiteSVMChain, payer: Keypair) -> None:
    # The authority passed twice: gtx_deserialize copies the first view for the duplicate, so the
    # program's signer check on account 0 and its CPI see one consistent account.
    address = await _initialized(chain, payer)
    ix = hello.greet(HELLO_ID, payer.pubkey(), 4)
    ix = Instruction(HELLO_ID, bytes(ix.data), [*ix.accounts, AccountMeta(payer.pubkey(), True, False)])
    (await chain.send_transaction([ix], [payer])).raise_for_failure()
    account = await chain.get_account(address)
    assert account is not None and hello.Greeting.decode(bytes(account.data)).total == 4
