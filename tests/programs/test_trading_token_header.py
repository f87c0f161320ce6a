"""gtx/token.h on its own: every CPI helper (user- and PDA-signed) and the decoders' refusals, in LiteSVM.

The trading program exercises transfer and close; mint_to, burn and transfer_checked are used by other
programs (the energy token mints GRID through a PDA), so a small C program drives each helper here.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable

import pytest
from solders.account import Account
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from spl.token.constants import TOKEN_PROGRAM_ID

from programs.client import LiteSVMChain, TxResult
from programs.toolchain.linker import link
from programs.trading.sandbox import create_mint, create_token_account, mint_to, token_amount

pytestmark = [pytest.mark.chain, pytest.mark.tool]

# Accounts: 0 mint [w], 1 source [w] (held by the PDA ["auth"] or by the signer), 2 authority,
# 3 destination [w], 4 Token program. Data: [0] op, [1] PDA bump or 0xFF for "authority signed",
# [2..10] amount u64.
SOURCE = r"""
#include <gtx_sol.h>
#include <gtx/token.h>

uint64_t entrypoint(const uint8_t *input) {
  SolAccountInfo a[5];
  GtxInput in;
  gtx_deserialize(input, a, 5, &in);
  GTX_TRY(expect_accounts(&in, 5));
  GTX_TRY(expect_program(&a[4], &GTX_TOKEN_PROGRAM_ID));
  if (in.data_len != 10)
    return ERROR_INVALID_INSTRUCTION_DATA;
  uint8_t op = in.data[0], bump = in.data[1];
  uint64_t amount = gtx_load_u64_le(in.data + 2);
  SolSignerSeed parts[2] = {{(const uint8_t *)"auth", 4}, {&bump, 1}};
  SolSignerSeeds pda = {parts, 2};
  const SolSignerSeeds *seeds = bump == 0xFF ? (const SolSignerSeeds *)0 : &pda;
  GtxMint mint;
  GtxTokenAccount account;
  switch (op) {
  case 0: { /* mint_to */
    GtxTokenMintTo t = {&a[0], &a[3], &a[2], amount, seeds};
    return gtx_token_mint_to(&t);
  }
  case 1: { /* transfer */
    GtxTokenTransfer t = {&a[1], &a[3], &a[2], amount, seeds};
    return gtx_token_transfer(&t);
  }
  case 2: { /* transfer_checked with the decimals the mint decodes to */
    GTX_TRY(gtx_mint_load(&a[0], &mint));
    GtxTokenTransferChecked t = {&a[1], &a[0], &a[3], &a[2], amount, mint.decimals, seeds};
    return gtx_token_transfer_checked(&t);
  }
  case 3: { /* burn */
    GtxTokenBurn t = {&a[1], &a[0], &a[2], amount, seeds};
    return gtx_token_burn(&t);
  }
  case 4: { /* close_account: lamports to the destination */
    GtxTokenCloseAccount t = {&a[1], &a[3], &a[2], seeds};
    return gtx_token_close_account(&t);
  }
  case 5: /* decode: log the mint's and the token account's fields */
    GTX_TRY(gtx_mint_load(&a[0], &mint));
    GTX_TRY(gtx_token_account_load(&a[1], &account));
    sol_log_64_(mint.supply, mint.decimals, mint.has_mint_authority, mint.has_freeze_authority, 0);
    sol_log_64_(account.amount, account.state, account.has_delegate, account.is_native,
                account.has_close_authority);
    sol_log_pubkey(account.mint);
    sol_log_pubkey(account.owner);
    sol_log_pubkey(mint.mint_authority);
    return SUCCESS;
  default:
    return GTX_CUSTOM_ERROR(99);
  }
}
"""

PROGRAM_ID = Pubkey.from_string("Token11111111111111111111111111111111111111")
MINT_TO, TRANSFER, TRANSFER_CHECKED, BURN, CLOSE, DECODE = range(6)
SIGNED = 0xFF


@pytest.fixture
async def setup(compile_c: Callable[[str, str], bytes]) -> tuple[LiteSVMChain, Keypair, Pubkey, int]:
    chain = LiteSVMChain()
    chain.add_program(PROGRAM_ID, link([("token_h.c", compile_c(SOURCE, "token_h"))]))
    payer = Keypair()
    await chain.fund(payer.pubkey(), 10 * 10**9)
    pda, bump = Pubkey.find_program_address([b"auth"], PROGRAM_ID)
    return chain, payer, pda, bump


def _ix(op: int, bump: int, amount: int, mint: Pubkey, source: Pubkey, authority: Pubkey, destination: Pubkey,
        *, authority_signs: bool = False) -> Instruction:
    return Instruction(PROGRAM_ID, struct.pack("<BBQ", op, bump, amount), [
        AccountMeta(mint, False, True),
        AccountMeta(source, False, True),
        AccountMeta(authority, authority_signs, False),
        AccountMeta(destination, False, True),
        AccountMeta(TOKEN_PROGRAM_ID, False, False),
    ])


async def _ok(chain: LiteSVMChain, ix: Instruction, signers: list[Keypair]) -> TxResult:
    return (await chain.send_transaction([ix], signers)).raise_for_failure()


async def test_pda_signed_mint_transfer_checked_burn_and_close(
        setup: tuple[LiteSVMChain, Keypair, Pubkey, int]) -> None:
    chain, payer, pda, bump = setup
    mint = await create_mint(chain, payer, pda, 9)  # the PDA is the mint authority, as for GRID
    held = await create_token_account(chain, payer, mint, pda)
    user = await create_token_account(chain, payer, mint, payer.pubkey())

    await _ok(chain, _ix(MINT_TO, bump, 1_000, mint, held, pda, held), [payer])
    await _ok(chain, _ix(TRANSFER, bump, 300, mint, held, pda, user), [payer])
    await _ok(chain, _ix(TRANSFER_CHECKED, bump, 200, mint, held, pda, user), [payer])
    await _ok(chain, _ix(BURN, bump, 500, mint, held, pda, user), [payer])
    assert [await token_amount(chain, a) for a in (held, user)] == [0, 500]
    supply = struct.unpack_from("<Q", bytes((await chain.get_account(mint)).data), 36)[0]  # type: ignore[union-attr]
    assert supply == 500
    lamports = (await chain.get_account(payer.pubkey())).lamports  # type: ignore[union-attr]
    rent = (await chain.get_account(held)).lamports  # type: ignore[union-attr]
    await _ok(chain, _ix(CLOSE, bump, 0, mint, held, pda, payer.pubkey()), [payer])
    assert await chain.get_account(held) is None
    assert (await chain.get_account(payer.pubkey())).lamports == lamports + rent - 5000  # type: ignore[union-attr]

    # A wrong bump is not the mint authority: the Token program refuses (its error, not ours).
    other_bump = next(b for b in range(bump - 1, 0, -1) if _valid(b))
    failed = await chain.send_transaction([_ix(MINT_TO, other_bump, 1, mint, user, pda, user)], [payer])
    assert failed.failure is not None and failed.failure.error == "PrivilegeEscalation", failed.failure


def _valid(bump: int) -> bool:
    """Whether ["auth", bump] gives a program address (the hash is off the curve), as the runtime derives it."""
    digest = hashlib.sha256(b"auth" + bytes([bump]) + bytes(PROGRAM_ID) + b"ProgramDerivedAddress").digest()
    return not Pubkey(digest).is_on_curve()


async def test_user_signed_transfer_and_decoding(setup: tuple[LiteSVMChain, Keypair, Pubkey, int]) -> None:
    chain, payer, _, _ = setup
    owner = Keypair()
    await chain.fund(owner.pubkey(), 10**9)
    mint = await create_mint(chain, payer, payer.pubkey(), 6)
    source = await create_token_account(chain, payer, mint, owner.pubkey())
    dest = await create_token_account(chain, payer, mint, payer.pubkey())
    await mint_to(chain, payer, mint, source, payer, 50)
    await _ok(chain, _ix(TRANSFER, SIGNED, 20, mint, source, owner.pubkey(), dest, authority_signs=True),
              [payer, owner])
    await _ok(chain, _ix(TRANSFER_CHECKED, SIGNED, 5, mint, source, owner.pubkey(), dest, authority_signs=True),
              [payer, owner])
    assert [await token_amount(chain, a) for a in (source, dest)] == [25, 25]
    # Without the owner's signature the CPI cannot pass the authority on as a signer.
    unsigned = await chain.send_transaction([_ix(TRANSFER, SIGNED, 1, mint, source, owner.pubkey(), dest)], [payer])
    assert unsigned.failure is not None and unsigned.failure.error == "PrivilegeEscalation"

    result = await _ok(chain, _ix(DECODE, SIGNED, 0, mint, source, owner.pubkey(), dest), [payer])
    assert "Program log: 0x32, 0x6, 0x1, 0x0, 0x0" in result.logs  # supply 50, 6 decimals, authority, no freeze
    assert "Program log: 0x19, 0x1, 0x0, 0x0, 0x0" in result.logs  # 25, Initialized, no delegate/native/close
    logged = [line.removeprefix("Program log: ") for line in result.logs]
    assert logged.index(str(mint)) < logged.index(str(owner.pubkey())) < logged.index(str(payer.pubkey()))


async def test_decoders_check_owner_program_size_and_initialisation(
        setup: tuple[LiteSVMChain, Keypair, Pubkey, int]) -> None:
    chain, payer, _, _ = setup
    mint = await create_mint(chain, payer, payer.pubkey(), 6)
    account = await create_token_account(chain, payer, mint, payer.pubkey())
    real = await chain.get_account(account)
    assert real is not None

    def decode(mint_key: Pubkey, account_key: Pubkey) -> Instruction:
        return _ix(DECODE, SIGNED, 0, mint_key, account_key, payer.pubkey(), account)

    foreign = Pubkey.new_unique()  # token-account bytes, another owner program
    chain.svm.set_account(foreign, Account(real.lamports, bytes(real.data), Pubkey.new_unique(), False, 0))
    uninitialised = Pubkey.new_unique()  # Token-owned, 165 zero bytes
    chain.svm.set_account(uninitialised, Account(real.lamports, bytes(165), TOKEN_PROGRAM_ID, False, 0))
    cases = [
        (decode(mint, foreign), "InvalidAccountOwner"),
        (decode(mint, uninitialised), "UninitializedAccount"),
        (decode(mint, mint), "InvalidAccountData"),  # a mint is not a 165-byte token account
        (decode(account, account), "InvalidAccountData"),  # nor a token account an 82-byte mint
    ]
    for ix, error in cases:
        result = await chain.send_transaction([ix], [payer])
        assert result.failure is not None and result.failure.error == error, (error, result.logs[-4:])
