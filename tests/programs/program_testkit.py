"""Set-up and assertions shared by the on-chain program tests (LiteSVM).

Imported by its bare name, ``from program_testkit import ...``: tests/programs has no ``__init__.py``, so
pytest puts this folder on sys.path (plain ``pytest`` and ``python -m pytest`` alike), and the name is
unique in the tree. Fixtures stay in each test module so that a reader sees what a test starts from.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

import pytest
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from programs.client import LiteSVMChain, ProgramErrors, TxResult, add_program_with_authority, program_so

__all__ = [
    "FUNDS",
    "TRADING_ID",
    "funded",
    "needs_clang",
    "refused_by",
    "set_unix_time",
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
