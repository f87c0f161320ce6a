"""Instruction builders, decoders, PDAs, events and error names of the payments program.

Mirror of programs/payments/src/instructions.h, state.h and events.h (docs/programs/payments.md).

THBC (6 decimals, 1 THBC = 10**6 base units = 1 baht) is minted only by this program: its mint authority
is the PDA ["authority"]. The payment operator named in the config issues THBC against a confirmed fiat
deposit; each deposit reference (32 bytes) has one deposit record PDA ["deposit", reference], created by
the Issue, so it is issued once. A holder redeems THBC by burning it, naming the payout.

Config  (PDA ["config"], 136 bytes):  [0] 0x40, [1] version (1), [2] bump, [3] authority bump,
                                      [8..40] authority (may replace the operator), [40..72] operator,
                                      [72..104] THBC mint, [104..136] mint authority PDA ["authority"]
Deposit (PDA ["deposit", reference], 120 bytes): [0] 0x41, [1] version, [2] bump, [8..40] reference,
                                      [40..72] payer (holder of the account credited), [72..104] the THBC
                                      account credited, [104..112] amount u64, [112..120] issued_at i64
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from solders.system_program import CreateAccountParams, create_account
from spl.token.constants import TOKEN_PROGRAM_ID
from spl.token.instructions import get_associated_token_address

from programs.client.chain import Chain, TxResult
from programs.client.deploy import programdata_address
from programs.client.errors import ProgramErrors
from programs.client.events import I64, U64, Bytes32, Key, ProgramEvents, event

__all__ = [
    "CONFIG_LEN",
    "DEPOSIT_LEN",
    "EVENTS",
    "PAYMENTS_ERRORS",
    "REFERENCE_LEN",
    "THBC_DECIMALS",
    "Deposit",
    "OperatorChanged",
    "PaymentIssued",
    "PaymentsConfig",
    "PaymentsDeployment",
    "PaymentsEvent",
    "PaymentsInitialized",
    "Redeemed",
    "authority_address",
    "bootstrap",
    "config_address",
    "create_thbc_mint",
    "decode_events",
    "deposit_address",
    "fetch_deposit",
    "initialize",
    "issue",
    "redeem",
    "reference_bytes",
    "reference_text",
    "set_operator",
]

CONFIG_SEED, AUTHORITY_SEED, DEPOSIT_SEED = b"config", b"authority", b"deposit"
DISC_CONFIG, DISC_DEPOSIT = 0x40, 0x41
VERSION = 1
CONFIG_LEN, DEPOSIT_LEN = 136, 120
REFERENCE_LEN = 32
THBC_DECIMALS = 6
MINT_LEN = 82
IX_INITIALIZE, IX_ISSUE, IX_REDEEM, IX_SET_OPERATOR = range(4)
_TOKEN_INITIALIZE_MINT2 = 20

PAYMENTS_ERRORS = ProgramErrors("payments", {
    1: "UnknownInstruction",
    2: "AccountWrongSize",
    3: "WrongAccountType",
    4: "NotOperator",
    5: "NotAuthority",
    6: "ZeroAmount",
    7: "WrongMint",
    8: "TokenAccountWrongMint",
    9: "WrongTokenOwner",
    10: "InsufficientBalance",
    11: "ReferenceAlreadyUsed",
    12: "WrongMintAuthority",
    13: "WrongDecimals",
    14: "WrongAuthority",
    15: "NonCanonicalBump",
})


def reference_bytes(reference: str | bytes) -> bytes:
    """A deposit or payout reference as the 32 bytes on chain: exactly 32 bytes as given (e.g. a hash), or
    printable ASCII of 1..32 characters, NUL padded (a bank reference such as "KBANK-2025-000123")."""
    if isinstance(reference, bytes) and len(reference) == REFERENCE_LEN:
        return reference
    raw = reference.encode("ascii") if isinstance(reference, str) else reference
    if not 1 <= len(raw) <= REFERENCE_LEN or not all(0x20 < b < 0x7F for b in raw):
        raise ValueError(f"a reference is 32 bytes, or 1-32 printable ASCII characters: {reference!r}")
    return raw.ljust(REFERENCE_LEN, b"\0")


def reference_text(raw: bytes) -> str:
    """A reference as a database or a person reads it: the text it was made from by
    :func:`reference_bytes` (printable ASCII, NUL padding dropped), or ``0x`` + 64 hex digits for any
    other 32 bytes (a hash). The indexer writes D7's ``reference`` this way."""
    if len(raw) != REFERENCE_LEN:
        raise ValueError(f"a reference is {REFERENCE_LEN} bytes, not {len(raw)}")
    text = raw.rstrip(b"\0")
    if text and all(0x20 < b < 0x7F for b in text):
        return text.decode("ascii")
    return "0x" + raw.hex()


def config_address(program_id: Pubkey) -> tuple[Pubkey, int]:
    return Pubkey.find_program_address([CONFIG_SEED], program_id)


def authority_address(program_id: Pubkey) -> tuple[Pubkey, int]:
    """THBC's mint authority (no data)."""
    return Pubkey.find_program_address([AUTHORITY_SEED], program_id)


def deposit_address(program_id: Pubkey, reference: str | bytes) -> tuple[Pubkey, int]:
    return Pubkey.find_program_address([DEPOSIT_SEED, reference_bytes(reference)], program_id)


def _check(data: bytes, disc: int, length: int, what: str) -> None:
    if len(data) != length or data[0] != disc or data[1] != VERSION:
        raise ValueError(f"not a version-{VERSION} payments {what} account ({len(data)} bytes)")


@dataclass(frozen=True)
class PaymentsConfig:
    bump: int
    authority_bump: int
    authority: Pubkey
    operator: Pubkey
    mint: Pubkey
    mint_authority: Pubkey

    @classmethod
    def decode(cls, data: bytes) -> PaymentsConfig:
        _check(data, DISC_CONFIG, CONFIG_LEN, "config")
        return cls(data[2], data[3], *(Pubkey.from_bytes(data[o:o + 32]) for o in (8, 40, 72, 104)))


@dataclass(frozen=True)
class Deposit:
    bump: int
    reference: bytes
    payer: Pubkey
    destination: Pubkey
    amount: int
    issued_at: int

    @classmethod
    def decode(cls, data: bytes) -> Deposit:
        _check(data, DISC_DEPOSIT, DEPOSIT_LEN, "deposit")
        amount, issued_at = struct.unpack_from("<Qq", data, 104)
        return cls(data[2], bytes(data[8:40]), Pubkey.from_bytes(data[40:72]), Pubkey.from_bytes(data[72:104]),
                   amount, issued_at)


async def fetch_deposit(chain: Chain, program_id: Pubkey, reference: str | bytes) -> Deposit | None:
    """The deposit record of ``reference``, or None if it was never issued."""
    found = await chain.get_account(deposit_address(program_id, reference)[0])
    if found is None:
        return None
    if found.owner != program_id:
        raise ValueError(f"the deposit address of {reference!r} is owned by {found.owner}")
    return Deposit.decode(bytes(found.data))


# --- events (programs/payments/src/events.h; docs/programs.md "Events") ----------------------------------

@event("PaymentsInitialized")
@dataclass(frozen=True)
class PaymentsInitialized:
    config: Key
    authority: Key
    operator: Key
    mint: Key
    mint_authority: Key


@event("PaymentIssued")
@dataclass(frozen=True)
class PaymentIssued:
    """Issue: ``amount`` THBC minted to ``destination`` (held by ``payer``) against deposit ``reference``."""

    deposit: Key
    reference: Bytes32
    payer: Key
    destination: Key
    amount: U64
    operator: Key
    timestamp: I64


@event("Redeemed")
@dataclass(frozen=True)
class Redeemed:
    """Redeem: ``amount`` THBC burned from ``account`` for the payout ``payout_reference``."""

    holder: Key
    account: Key
    amount: U64
    balance: U64
    payout_reference: Bytes32
    timestamp: I64


@event("OperatorChanged")
@dataclass(frozen=True)
class OperatorChanged:
    config: Key
    previous_operator: Key
    operator: Key


PaymentsEvent = PaymentsInitialized | PaymentIssued | Redeemed | OperatorChanged
EVENTS = ProgramEvents("payments", [PaymentsInitialized, PaymentIssued, Redeemed, OperatorChanged])


def decode_events(result: TxResult, program_id: Pubkey) -> list[PaymentsEvent]:
    """The payments program's events in a transaction, in order (EventsTruncated if cut off)."""
    return [e.event for e in result.decode_events({program_id: EVENTS}).complete()]


# --- instructions ----------------------------------------------------------------------------------------

def create_thbc_mint(payer: Pubkey, mint: Pubkey, program_id: Pubkey, lamports: int, *,
                     freeze_authority: Pubkey | None = None, mint_authority: Pubkey | None = None
                     ) -> list[Instruction]:
    """System CreateAccount (82 bytes, Token program) + Token InitializeMint2: 6 decimals, mint authority
    = this program's PDA (``mint_authority`` overrides, for tests); ``mint`` signs. A compliance freeze
    authority is optional (docs/programs/thbc.md)."""
    create = create_account(CreateAccountParams(from_pubkey=payer, to_pubkey=mint, lamports=lamports,
                                                space=MINT_LEN, owner=TOKEN_PROGRAM_ID))
    freeze = b"\x01" + bytes(freeze_authority) if freeze_authority is not None else b"\x00"
    authority = mint_authority or authority_address(program_id)[0]
    data = bytes([_TOKEN_INITIALIZE_MINT2, THBC_DECIMALS]) + bytes(authority) + freeze
    return [create, Instruction(TOKEN_PROGRAM_ID, data, [AccountMeta(mint, False, True)])]


def initialize(program_id: Pubkey, admin: Pubkey, mint: Pubkey, operator: Pubkey, *, config: Pubkey | None = None,
               config_bump: int | None = None, authority_bump: int | None = None,
               programdata: Pubkey | None = None) -> Instruction:
    """0 Initialize — accounts: admin [w, s] (upgrade authority; pays), config [w], THBC mint [],
    programdata [], System program. Data: [0] disc, [1] config bump, [2] authority bump,
    [3..35] payment operator."""
    derived, derived_bump = config_address(program_id)
    a_bump = authority_address(program_id)[1] if authority_bump is None else authority_bump
    data = bytes([IX_INITIALIZE, derived_bump if config_bump is None else config_bump, a_bump]) + bytes(operator)
    return Instruction(program_id, data, [
        AccountMeta(admin, True, True),
        AccountMeta(config or derived, False, True),
        AccountMeta(mint, False, False),
        AccountMeta(programdata or programdata_address(program_id), False, False),
        AccountMeta(SYSTEM_PROGRAM_ID, False, False),
    ])


def issue(program_id: Pubkey, operator: Pubkey, mint: Pubkey, destination: Pubkey, reference: str | bytes,
          amount: int, *, deposit: Pubkey | None = None, bump: int | None = None, config: Pubkey | None = None,
          authority: Pubkey | None = None, operator_signs: bool = True) -> Instruction:
    """1 Issue — accounts: operator [w, s] (pays the deposit record), config [], deposit [w], THBC mint [w],
    destination THBC account [w], authority [], Token program, System program. Data: [0] disc,
    [1..33] deposit reference, [33..41] amount u64, [41] deposit bump."""
    ref = reference_bytes(reference)
    derived, derived_bump = deposit_address(program_id, ref)
    data = bytes([IX_ISSUE]) + ref + struct.pack("<QB", amount, derived_bump if bump is None else bump)
    return Instruction(program_id, data, [
        AccountMeta(operator, operator_signs, True),
        AccountMeta(config or config_address(program_id)[0], False, False),
        AccountMeta(deposit or derived, False, True),
        AccountMeta(mint, False, True),
        AccountMeta(destination, False, True),
        AccountMeta(authority or authority_address(program_id)[0], False, False),
        AccountMeta(TOKEN_PROGRAM_ID, False, False),
        AccountMeta(SYSTEM_PROGRAM_ID, False, False),
    ])


def redeem(program_id: Pubkey, holder: Pubkey, mint: Pubkey, amount: int, payout_reference: str | bytes, *,
           account: Pubkey | None = None, config: Pubkey | None = None, holder_signs: bool = True) -> Instruction:
    """2 Redeem — accounts: holder [s], holder's THBC account [w] (default: its associated account),
    THBC mint [w], config [], Token program. Data: [0] disc, [1..9] amount u64, [9..41] payout reference."""
    data = bytes([IX_REDEEM]) + struct.pack("<Q", amount) + reference_bytes(payout_reference)
    return Instruction(program_id, data, [
        AccountMeta(holder, holder_signs, False),
        AccountMeta(account or get_associated_token_address(holder, mint), False, True),
        AccountMeta(mint, False, True),
        AccountMeta(config or config_address(program_id)[0], False, False),
        AccountMeta(TOKEN_PROGRAM_ID, False, False),
    ])


def set_operator(program_id: Pubkey, authority: Pubkey, operator: Pubkey, *, config: Pubkey | None = None,
                 authority_signs: bool = True) -> Instruction:
    """3 SetOperator — accounts: authority [s], config [w]. Data: [0] disc, [1..33] new operator."""
    return Instruction(program_id, bytes([IX_SET_OPERATOR]) + bytes(operator), [
        AccountMeta(authority, authority_signs, False),
        AccountMeta(config or config_address(program_id)[0], False, True),
    ])


@dataclass(frozen=True)
class PaymentsDeployment:
    program: Pubkey
    mint: Pubkey  # THBC
    mint_authority: Pubkey  # the program's PDA ["authority"]
    operator: Pubkey


async def bootstrap(chain: Chain, admin: Keypair, program_id: Pubkey, operator: Pubkey, *,
                    mint: Keypair | None = None) -> PaymentsDeployment:
    """A fresh THBC mint whose authority is the payments PDA, and the config naming ``operator``.
    ``admin`` must be the program's upgrade authority (it becomes the config authority)."""
    mint = mint or Keypair()
    lamports = await chain.minimum_balance(MINT_LEN)
    (await chain.send_transaction(create_thbc_mint(admin.pubkey(), mint.pubkey(), program_id, lamports),
                                  [admin, mint])).raise_for_failure()
    ix = initialize(program_id, admin.pubkey(), mint.pubkey(), operator)
    (await chain.send_transaction([ix], [admin])).raise_for_failure()
    return PaymentsDeployment(program_id, mint.pubkey(), authority_address(program_id)[0], operator)
