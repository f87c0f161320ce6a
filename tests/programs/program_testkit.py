"""Set-up and assertions shared by the on-chain program tests (LiteSVM).

Imported by its bare name, ``from program_testkit import ...``: tests/programs has no ``__init__.py``, so
pytest puts this folder on sys.path (plain ``pytest`` and ``python -m pytest`` alike), and the name is
unique in the tree. Fixtures stay in each test module so that a reader sees what a test starts from.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence

import pytest
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from programs.client import (
    ED25519_PROGRAM_ID,
    LiteSVMChain,
    ProgramErrors,
    TxResult,
    add_program_with_authority,
    program_so,
)

__all__ = [
    "FEE_PER_SIGNATURE",
    "FUNDS",
    "TRADING_ID",
    "AccountSnapshot",
    "funded",
    "invalid_bump",
    "needs_clang",
    "non_canonical_bump",
    "pda_at",
    "refused_by",
    "refused_without_effect",
    "set_unix_time",
    "snapshot",
    "trading_chain",
    "with_account",
    "without_signature",
]

# The rebuild and compile tests need clang-19. A developer machine without it skips them; under CI
# (CI=true), where .ci/setup installs it, a missing compiler is a broken set-up and must fail instead.
needs_clang = pytest.mark.skipif(
    shutil.which("clang-19") is None and not os.environ.get("CI"),
    reason="clang-19 is not installed (bash .ci/setup installs it)",
)

FUNDS = 10 * 10**9  # lamports: enough for every account a test creates
FEE_PER_SIGNATURE = 5_000  # LiteSVM's default; charged even when a transaction fails
TRADING_ID = Pubkey.from_string("Trading111111111111111111111111111111111111")


async def funded(chain: LiteSVMChain, lamports: int = FUNDS) -> Keypair:
    """A fresh keypair holding ``lamports``."""
    key = Keypair()
    await chain.fund(key.pubkey(), lamports)
    return key


def refused_by(errors: ProgramErrors) -> Callable[[TxResult, str], None]:
    """An assertion that a transaction failed with the error ``name`` (a program's custom error by its
    error.h name, or a built-in one such as MissingRequiredSignature)."""

    def check(result: TxResult, name: str) -> None:
        assert result.failure is not None, f"expected {name}, but the transaction succeeded"
        assert errors.name(result.failure) == name, (result.failure, result.logs[-6:])

    return check


def set_unix_time(chain: LiteSVMChain, unix_timestamp: int) -> None:
    """Move the Clock sysvar's unix_timestamp (slot and epoch unchanged)."""
    clock = chain.svm.get_clock()
    clock.unix_timestamp = unix_timestamp
    chain.svm.set_clock(clock)


def with_account(ix: Instruction, index: int, meta: AccountMeta) -> Instruction:
    """``ix`` with its account ``index`` replaced: a substituted, non-signing or read-only account."""
    accounts = list(ix.accounts)
    accounts[index] = meta
    return Instruction(ix.program_id, bytes(ix.data), accounts)



def without_signature(ix: Instruction, index: int = 0) -> Instruction:
    """``ix`` with account ``index`` listed as a non-signer (same key and writability): the program must
    refuse it with MissingRequiredSignature, whoever else signs the transaction."""
    meta = ix.accounts[index]
    return with_account(ix, index, AccountMeta(meta.pubkey, False, meta.is_writable))


def trading_chain(admin: Keypair, unix_timestamp: int | None = None) -> LiteSVMChain:
    """A chain with the trading program at TRADING_ID, ``admin`` its upgrade authority (hence the only key
    that may initialise the market), the clock at ``unix_timestamp`` if given."""
    chain = LiteSVMChain()
    add_program_with_authority(chain, TRADING_ID, program_so("trading"), admin.pubkey())
    if unix_timestamp is not None:
        set_unix_time(chain, unix_timestamp)
    return chain


# --- PDA bumps ------------------------------------------------------------------------------------------

def pda_at(seeds: list[bytes], bump: int, program_id: Pubkey) -> Pubkey:
    """The program address of ``seeds`` at ``bump`` (solders raises if that bump gives none)."""
    return Pubkey.create_program_address([*seeds, bytes([bump])], program_id)


def _valid(seeds: list[bytes], bump: int, program_id: Pubkey) -> bool:
    try:
        pda_at(seeds, bump, program_id)
    except Exception:  # solders.PubkeyError, which solders does not export
        return False
    return True


def non_canonical_bump(seeds: list[bytes], program_id: Pubkey) -> int:
    """The highest bump below the canonical one that still gives a program address: a second, valid
    address for the same seeds, which the programs must refuse to create an account at."""
    _, canonical = Pubkey.find_program_address(seeds, program_id)
    for bump in range(canonical - 1, -1, -1):
        if _valid(seeds, bump, program_id):
            return bump
    raise AssertionError(f"no valid bump below {canonical} for {seeds!r}")


def invalid_bump(seeds: list[bytes], program_id: Pubkey) -> int:
    """A bump that gives no program address (the hash is a curve point)."""
    for bump in range(255, -1, -1):
        if not _valid(seeds, bump, program_id):
            return bump
    raise AssertionError(f"every bump is valid for {seeds!r}")


# --- refusals that change nothing -----------------------------------------------------------------------

AccountSnapshot = dict[Pubkey, tuple[int, Pubkey, bytes] | None]


async def snapshot(chain: LiteSVMChain, keys: list[Pubkey]) -> AccountSnapshot:
    """Lamports, owner and data of each account (None: it does not exist)."""
    out: AccountSnapshot = {}
    for key in keys:
        account = await chain.get_account(key)
        out[key] = None if account is None else (account.lamports, account.owner, bytes(account.data))
    return out


async def refused_without_effect(chain: LiteSVMChain, errors: ProgramErrors, instructions: list[Instruction],
                                 signers: list[Keypair], name: str, *, watch: Sequence[Pubkey] = ()) -> TxResult:
    """Send, expect the error ``name``, and check that no account the instructions name (nor those in
    ``watch``) changed: nothing created, no lamports or token balance moved. The fee payer (first signer)
    loses exactly the transaction fee, which a cluster charges for failed transactions too."""
    keys = list(dict.fromkeys([*(m.pubkey for ix in instructions for m in ix.accounts), *watch,
                               *(s.pubkey() for s in signers)]))
    before = await snapshot(chain, keys)
    result = await chain.send_transaction(instructions, signers)
    refused_by(errors)(result, name)
    after = await snapshot(chain, keys)
    payer = signers[0].pubkey()
    # Every transaction signature and every signature an Ed25519 precompile instruction verifies is paid.
    verified = sum(ix.data[0] for ix in instructions if ix.program_id == ED25519_PROGRAM_ID)
    fee = FEE_PER_SIGNATURE * (len(signers) + verified)
    for key in keys:
        was, now = before[key], after[key]
        if key == payer and was is not None and now is not None:
            assert (now[0], now[1], now[2]) == (was[0] - fee, was[1], was[2]), f"fee payer {key} changed"
        else:
            assert now == was, f"{key} changed although the transaction failed with {name}"
    return result
