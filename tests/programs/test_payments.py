"""The payments program in LiteSVM: THBC issued by the payment operator against a deposit reference (once),
redeemed by burning, the operator rotated by the config authority; every refusal by name, with nothing
created and no balance moved."""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

import pytest
from program_testkit import funded, refused_by, refused_without_effect, set_unix_time, with_account, without_signature
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from programs.client import LiteSVMChain, TxResult, add_program_with_authority, program_so
from programs.client.deploy import programdata_address
from programs.payments import client as payments
from programs.payments.client import PAYMENTS_ERRORS
from programs.trading.sandbox import create_mint, create_token_account, mint_to_instruction, token_amount

pytestmark = pytest.mark.chain

PAYMENTS_ID = Keypair.from_seed(bytes([0x91]) * 32).pubkey()
NOW = 1_764_072_000
BAHT = 10**6

_refused = refused_by(PAYMENTS_ERRORS)


@dataclass
class World:
    chain: LiteSVMChain
    admin: Keypair  # upgrade authority, config authority
    operator: Keypair  # the payment gateway
    thbc: payments.PaymentsDeployment
    customer: Keypair
    account: Pubkey  # the customer's THBC account

    async def send(self, ixs: list[Instruction], *signers: Keypair) -> TxResult:
        return await self.chain.send_transaction(ixs, list(signers))

    def issue(self, reference: str | bytes, amount: int, **kw: object) -> Instruction:
        return payments.issue(PAYMENTS_ID, self.operator.pubkey(), self.thbc.mint, self.account, reference, amount,
                              **kw)  # type: ignore[arg-type]

    async def supply(self) -> int:
        found = await self.chain.get_account(self.thbc.mint)
        assert found is not None
        return int(struct.unpack_from("<Q", bytes(found.data), 36)[0])


@pytest.fixture
async def world() -> World:
    chain = LiteSVMChain()
    set_unix_time(chain, NOW)
    admin, operator, customer = await funded(chain), await funded(chain), await funded(chain)
    add_program_with_authority(chain, PAYMENTS_ID, program_so("payments"), admin.pubkey())
    thbc = await payments.bootstrap(chain, admin, PAYMENTS_ID, operator.pubkey())
    account = await create_token_account(chain, customer, thbc.mint, customer.pubkey())
    return World(chain, admin, operator, thbc, customer, account)


# --- Initialize ---------------------------------------------------------------------------------------

async def test_initialize_pins_thbc_and_names_the_operator(world: World) -> None:
    found = await world.chain.get_account(payments.config_address(PAYMENTS_ID)[0])
    assert found is not None and found.owner == PAYMENTS_ID
    config = payments.PaymentsConfig.decode(bytes(found.data))
    authority, authority_bump = payments.authority_address(PAYMENTS_ID)
    assert (config.bump, config.authority_bump) == (payments.config_address(PAYMENTS_ID)[1], authority_bump)
    assert (config.authority, config.operator, config.mint, config.mint_authority) == (
        world.admin.pubkey(), world.operator.pubkey(), world.thbc.mint, authority)
    # THBC's mint authority is the program's PDA: nobody, the operator included, mints directly.
    direct = mint_to_instruction(world.thbc.mint, world.account, world.operator.pubkey(), BAHT)
    result = await world.send([direct], world.operator)
    assert result.failure is not None and await token_amount(world.chain, world.account) == 0


async def test_initialize_event_and_refusals() -> None:
    chain = LiteSVMChain()
    admin, intruder = await funded(chain), await funded(chain)
    add_program_with_authority(chain, PAYMENTS_ID, program_so("payments"), admin.pubkey())
    mint = Keypair()
    lamports = await chain.minimum_balance(payments.MINT_LEN)
    (await chain.send_transaction(payments.create_thbc_mint(admin.pubkey(), mint.pubkey(), PAYMENTS_ID, lamports),
                                  [admin, mint])).raise_for_failure()
    operator = Pubkey.new_unique()
    ix = payments.initialize(PAYMENTS_ID, intruder.pubkey(), mint.pubkey(), intruder.pubkey())
    await refused_without_effect(chain, PAYMENTS_ERRORS, [ix], [intruder], "IncorrectAuthority")
    # A mint whose authority is a key, and a mint with other decimals.
    keyed = await create_mint(chain, admin, admin.pubkey(), 6)
    ix = payments.initialize(PAYMENTS_ID, admin.pubkey(), keyed, operator)
    await refused_without_effect(chain, PAYMENTS_ERRORS, [ix], [admin], "WrongMintAuthority")
    nine = await create_mint(chain, admin, payments.authority_address(PAYMENTS_ID)[0], 9)
    ix = payments.initialize(PAYMENTS_ID, admin.pubkey(), nine, operator)
    await refused_without_effect(chain, PAYMENTS_ERRORS, [ix], [admin], "WrongDecimals")
    result = await chain.send_transaction([payments.initialize(PAYMENTS_ID, admin.pubkey(), mint.pubkey(), operator)],
                                          [admin])
    config = payments.config_address(PAYMENTS_ID)[0]
    assert payments.decode_events(result.raise_for_failure(), PAYMENTS_ID) == [payments.PaymentsInitialized(
        config, admin.pubkey(), operator, mint.pubkey(), payments.authority_address(PAYMENTS_ID)[0])]
    again = payments.initialize(PAYMENTS_ID, admin.pubkey(), mint.pubkey(), admin.pubkey())
    await refused_without_effect(chain, PAYMENTS_ERRORS, [again], [admin], "AccountAlreadyInitialized")
    other = Keypair().pubkey()
    add_program_with_authority(chain, other, program_so("payments"), intruder.pubkey())
    ix = payments.initialize(PAYMENTS_ID, intruder.pubkey(), mint.pubkey(), intruder.pubkey(),
                             programdata=programdata_address(other))
    _refused(await chain.send_transaction([ix], [intruder]), "InvalidSeeds")


# --- Issue --------------------------------------------------------------------------------------------

async def test_issue_mints_and_records_the_deposit_once(world: World) -> None:
    result = await world.send([world.issue("KBANK-2025-000123", 250 * BAHT)], world.operator)
    result.raise_for_failure()
    assert await token_amount(world.chain, world.account) == 250 * BAHT
    assert await world.supply() == 250 * BAHT
    reference = payments.reference_bytes("KBANK-2025-000123")
    deposit, bump = payments.deposit_address(PAYMENTS_ID, reference)
    assert await payments.fetch_deposit(world.chain, PAYMENTS_ID, "KBANK-2025-000123") == payments.Deposit(
        bump, reference, world.customer.pubkey(), world.account, 250 * BAHT, NOW)
    assert payments.decode_events(result, PAYMENTS_ID) == [payments.PaymentIssued(
        deposit, reference, world.customer.pubkey(), world.account, 250 * BAHT, world.operator.pubkey(), NOW)]
    # The same reference again — same amount, another amount, another account: refused, nothing moves.
    other = await create_token_account(world.chain, world.operator, world.thbc.mint, world.operator.pubkey())
    for ix in (world.issue("KBANK-2025-000123", 250 * BAHT), world.issue("KBANK-2025-000123", 1),
               payments.issue(PAYMENTS_ID, world.operator.pubkey(), world.thbc.mint, other, "KBANK-2025-000123",
                              BAHT)):
        await refused_without_effect(world.chain, PAYMENTS_ERRORS, [ix], [world.operator], "ReferenceAlreadyUsed",
                                     watch=[world.thbc.mint])
    assert await world.supply() == 250 * BAHT
    # Another reference is another deposit.
    (await world.send([world.issue("KBANK-2025-000124", 5 * BAHT)], world.operator)).raise_for_failure()
    assert await world.supply() == 255 * BAHT


async def test_only_the_operator_issues(world: World) -> None:
    intruder = await funded(world.chain)
    ix = payments.issue(PAYMENTS_ID, intruder.pubkey(), world.thbc.mint, world.account, "REF-1", 10 * BAHT)
    await refused_without_effect(world.chain, PAYMENTS_ERRORS, [ix], [intruder], "NotOperator",
                                 watch=[world.thbc.mint])
    # The admin (config authority, upgrade authority) is no operator either.
    ix = payments.issue(PAYMENTS_ID, world.admin.pubkey(), world.thbc.mint, world.account, "REF-1", 10 * BAHT)
    await refused_without_effect(world.chain, PAYMENTS_ERRORS, [ix], [world.admin], "NotOperator")
    # The operator's key listed without its signature.
    await refused_without_effect(world.chain, PAYMENTS_ERRORS, [without_signature(world.issue("REF-1", BAHT))],
                                 [intruder], "MissingRequiredSignature")
    assert await payments.fetch_deposit(world.chain, PAYMENTS_ID, "REF-1") is None
    assert await world.supply() == 0


async def test_issue_refusals(world: World) -> None:
    grid = await create_mint(world.chain, world.admin, world.admin.pubkey(), 9)
    grid_account = await create_token_account(world.chain, world.customer, grid, world.customer.pubkey())
    ix = world.issue("REF-2", BAHT)
    cases = [
        (world.issue("REF-2", 0), "ZeroAmount"),
        (with_account(ix, 3, AccountMeta(grid, False, True)), "WrongMint"),
        (with_account(ix, 4, AccountMeta(grid_account, False, True)), "TokenAccountWrongMint"),
        (with_account(ix, 5, AccountMeta(Pubkey.new_unique(), False, False)), "WrongAuthority"),
        (world.issue("REF-2", BAHT, deposit=Pubkey.new_unique()), "InvalidSeeds"),
        (with_account(ix, 6, AccountMeta(Pubkey.new_unique(), False, False)), "IncorrectProgramId"),
        (Instruction(PAYMENTS_ID, bytes(ix.data)[:-1], ix.accounts), "InvalidInstructionData"),
        (Instruction(PAYMENTS_ID, bytes([9]), []), "UnknownInstruction"),
    ]
    for bad, name in cases:
        await refused_without_effect(world.chain, PAYMENTS_ERRORS, [bad], [world.operator], name)
    assert await world.supply() == 0


# --- Redeem -------------------------------------------------------------------------------------------

async def test_redeem_burns_and_is_recorded(world: World) -> None:
    (await world.send([world.issue("REF-3", 100 * BAHT)], world.operator)).raise_for_failure()
    set_unix_time(world.chain, NOW + 60)
    ix = payments.redeem(PAYMENTS_ID, world.customer.pubkey(), world.thbc.mint, 40 * BAHT, "PAYOUT-77",
                         account=world.account)
    result = await world.send([ix], world.customer)
    result.raise_for_failure()
    assert await token_amount(world.chain, world.account) == 60 * BAHT
    assert await world.supply() == 60 * BAHT  # supply = issued - redeemed
    assert payments.decode_events(result, PAYMENTS_ID) == [payments.Redeemed(
        world.customer.pubkey(), world.account, 40 * BAHT, 60 * BAHT, payments.reference_bytes("PAYOUT-77"), NOW + 60)]


async def test_redeem_refusals(world: World) -> None:
    (await world.send([world.issue("REF-4", 10 * BAHT)], world.operator)).raise_for_failure()
    thief = await funded(world.chain)

    def redeem(holder: Keypair, amount: int, **kw: object) -> Instruction:
        return payments.redeem(PAYMENTS_ID, holder.pubkey(), world.thbc.mint, amount, "P-1",
                               **{"account": world.account, **kw})  # type: ignore[arg-type]

    cases = [
        (redeem(thief, BAHT), [thief], "WrongTokenOwner"),  # someone else's THBC
        (redeem(world.customer, 10 * BAHT + 1), [world.customer], "InsufficientBalance"),
        (redeem(world.customer, 0), [world.customer], "ZeroAmount"),
        (without_signature(redeem(world.customer, BAHT)), [thief], "MissingRequiredSignature"),
        (with_account(redeem(world.customer, BAHT), 3, AccountMeta(Pubkey.new_unique(), False, False)),
         [world.customer], "InvalidAccountOwner"),
    ]
    for ix, signers, name in cases:
        await refused_without_effect(world.chain, PAYMENTS_ERRORS, [ix], signers, name, watch=[world.thbc.mint])
    assert await token_amount(world.chain, world.account) == 10 * BAHT


# --- SetOperator --------------------------------------------------------------------------------------

async def test_the_config_authority_rotates_the_operator(world: World) -> None:
    new = await funded(world.chain)
    intruder = await funded(world.chain)
    await refused_without_effect(world.chain, PAYMENTS_ERRORS,
                                 [payments.set_operator(PAYMENTS_ID, intruder.pubkey(), intruder.pubkey())],
                                 [intruder], "NotAuthority")
    await refused_without_effect(world.chain, PAYMENTS_ERRORS,
                                 [payments.set_operator(PAYMENTS_ID, world.operator.pubkey(), intruder.pubkey())],
                                 [world.operator], "NotAuthority")
    result = await world.send([payments.set_operator(PAYMENTS_ID, world.admin.pubkey(), new.pubkey())], world.admin)
    assert payments.decode_events(result.raise_for_failure(), PAYMENTS_ID) == [payments.OperatorChanged(
        payments.config_address(PAYMENTS_ID)[0], world.operator.pubkey(), new.pubkey())]
    await refused_without_effect(world.chain, PAYMENTS_ERRORS, [world.issue("REF-5", BAHT)], [world.operator],
                                 "NotOperator")
    ix = payments.issue(PAYMENTS_ID, new.pubkey(), world.thbc.mint, world.account, "REF-5", BAHT)
    (await world.send([ix], new)).raise_for_failure()
    assert await token_amount(world.chain, world.account) == BAHT


def test_references_are_32_bytes() -> None:
    assert payments.reference_bytes("KBANK-1") == b"KBANK-1".ljust(32, b"\0")
    raw = bytes(range(32))
    assert payments.reference_bytes(raw) == raw
    assert payments.reference_text(payments.reference_bytes("KBANK-1")) == "KBANK-1"
    assert payments.reference_text(payments.reference_bytes("X" * 32)) == "X" * 32
    assert payments.reference_text(raw) == "0x" + raw.hex()  # a hash is shown as hex, never as text
    assert payments.reference_text(b"AB\0C".ljust(32, b"\0")).startswith("0x")  # a NUL inside: not text
    for bad in ("", "x" * 33, "has space", b"\x00abc"):
        with pytest.raises(ValueError, match="reference"):
            payments.reference_bytes(bad)


def test_error_table_mirrors_error_h() -> None:
    source = (Path(__file__).resolve().parents[2] / "programs" / "payments" / "src" / "error.h").read_text()
    c_errors = {int(n): "".join(w.capitalize() for w in name.split("_"))
                for name, n in re.findall(r"PAYMENTS_ERROR_(\w+) = (\d+)", source)}
    assert c_errors == PAYMENTS_ERRORS.codes

