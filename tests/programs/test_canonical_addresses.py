"""One canonical address per account (issue 7): every account-creating instruction of every program refuses
a valid but non-canonical bump by name, with nothing created and no balance moved; singletons (registry
config, energy-token config, certificates config, market) exist once; a program-owned copy of an account
at any other address, or an account of another type, is refused by the loaders; and the two attacks the
adversarial review showed — double certification and a duplicate meter — fail end to end.

About half of all bumps give a valid program address, so before this change one seed set had dozens of
addresses the programs accepted. ``non_canonical_bump`` picks the highest valid bump below the one
``find_program_address`` returns.
"""

from __future__ import annotations

import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from nacl.signing import SigningKey
from program_testkit import (
    TRADING_ID,
    funded,
    non_canonical_bump,
    pda_at,
    refused_by,
    refused_without_effect,
    set_unix_time,
    with_account,
)
from solders.account import Account
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from spl.token.instructions import get_associated_token_address

from gridtokenx.reading import Reading, SignedReading, sign
from programs.certificates import client as certs
from programs.client import LiteSVMChain, ProgramErrors, program_so
from programs.client.deploy import add_program_with_authority
from programs.energy_token import client as energy
from programs.energy_token.bootstrap import GridDeployment, bootstrap, register_active_meter
from programs.hello import client as hello
from programs.payments import client as payments
from programs.registry import client as registry
from programs.trading import client as trading
from programs.trading.sandbox import Trader, TradingSandbox, create_token_account, token_amount

pytestmark = pytest.mark.chain

REGISTRY_ID = Keypair.from_seed(bytes([0x71]) * 32).pubkey()
ENERGY_ID = Keypair.from_seed(bytes([0x72]) * 32).pubkey()
CERTS_ID = Keypair.from_seed(bytes([0x73]) * 32).pubkey()
HELLO_ID = Keypair.from_seed(bytes([0x74]) * 32).pubkey()
PAYMENTS_ID = Keypair.from_seed(bytes([0x75]) * 32).pubkey()
NOW = 1_764_072_000
KWH = trading.GRID_PER_KWH
METER_ID = "SDM630-000042"
METER_KEY = SigningKey(bytes([0x42]) * 32)
ORDER_ID = 7

ERRORS: dict[str, ProgramErrors] = {
    "registry": registry.REGISTRY_ERRORS,
    "energy_token": energy.ENERGY_TOKEN_ERRORS,
    "certificates": certs.CERTIFICATES_ERRORS,
    "trading": trading.TRADING_ERRORS,
    "hello": hello.HELLO_ERRORS,
    "payments": payments.PAYMENTS_ERRORS,
}


@dataclass
class World:
    """Every program loaded with ``admin`` as upgrade authority; set-up steps run on demand."""

    chain: LiteSVMChain
    admin: Keypair
    owner: Keypair  # a prosumer: registered user, meter owner, certificate holder, seller
    grid: GridDeployment | None = None
    grid_mint: Pubkey | None = None
    meter: Pubkey | None = None
    market: TradingSandbox | None = None
    seller: Trader | None = None
    thbc: Pubkey | None = None
    thbc_account: Pubkey | None = None
    done: set[str] = field(default_factory=set)

    @classmethod
    async def fresh(cls) -> World:
        chain = LiteSVMChain()
        set_unix_time(chain, NOW)
        admin, owner = await funded(chain), await funded(chain)
        for program, name in ((REGISTRY_ID, "registry"), (ENERGY_ID, "energy_token"), (CERTS_ID, "certificates"),
                              (TRADING_ID, "trading"), (HELLO_ID, "hello"), (PAYMENTS_ID, "payments")):
            add_program_with_authority(chain, program, program_so(name), admin.pubkey())
        return cls(chain, admin, owner)

    async def send(self, ixs: list[Instruction], signers: list[Keypair]) -> None:
        (await self.chain.send_transaction(ixs, signers)).raise_for_failure()

    # --- set-up steps, each run once ----------------------------------------------------------------

    async def registry_ready(self) -> None:
        if "registry" not in self.done:
            self.done.add("registry")
            authority = energy.authority_address(ENERGY_ID)[0]
            await self.send([registry.initialize(REGISTRY_ID, self.admin.pubkey(), authority)], [self.admin])

    async def user_ready(self) -> None:
        await self.registry_ready()
        if "user" not in self.done:
            self.done.add("user")
            ix = registry.register_user(REGISTRY_ID, self.owner.pubkey(), registry.UserKind.PROSUMER)
            await self.send([ix], [self.owner])

    async def grid_mint_ready(self) -> None:
        """The registry and a fresh GRID mint whose authority is the energy token's canonical PDA."""
        await self.registry_ready()
        if self.grid_mint is None:
            mint = Keypair()
            lamports = await self.chain.minimum_balance(energy.MINT_LEN)
            await self.send(energy.create_grid_mint(self.admin.pubkey(), mint.pubkey(),
                                                    energy.authority_address(ENERGY_ID)[0], lamports),
                            [self.admin, mint])
            self.grid_mint = mint.pubkey()

    async def settled_meter_ready(self) -> None:
        """Registry + energy token, an active meter with its baseline and 4,000 Wh above it settled."""
        if self.meter is not None:
            return
        self.grid = await bootstrap(self.chain, self.admin, REGISTRY_ID, ENERGY_ID)
        self.done.add("registry")
        meter = await register_active_meter(self.chain, self.grid, self.admin, self.owner, METER_ID,
                                            bytes(METER_KEY.verify_key))
        self.meter = meter.address
        for seq, imp, exp in ((1, 250_000, 180_000), (2, 251_000, 185_000)):
            await self.settle(Reading(METER_ID, seq, NOW * 1000 + seq * 60_000, imp, exp))

    async def settle(self, reading: Reading, *, meter: Pubkey | None = None) -> None:
        assert self.grid is not None
        signed = sign(reading, METER_KEY)
        ixs = energy.settle_transaction(ENERGY_ID, REGISTRY_ID, self.grid.mint, self.owner.pubkey(), signed,
                                        bytes(METER_KEY.verify_key), **({"meter": meter} if meter else {}))
        await self.send(list(ixs), [self.owner])

    async def certs_ready(self) -> None:
        await self.settled_meter_ready()
        if "certs" not in self.done:
            self.done.add("certs")
            ix = certs.initialize(CERTS_ID, self.admin.pubkey(), self.admin.pubkey(), REGISTRY_ID)
            await self.send([ix], [self.admin])

    async def thbc_ready(self) -> None:
        """A THBC mint whose authority is the payments PDA; no payments config yet."""
        if self.thbc is None:
            mint = Keypair()
            lamports = await self.chain.minimum_balance(payments.MINT_LEN)
            await self.send(payments.create_thbc_mint(self.admin.pubkey(), mint.pubkey(), PAYMENTS_ID, lamports),
                            [self.admin, mint])
            self.thbc = mint.pubkey()

    async def payments_ready(self) -> None:
        """Payments initialised with ``owner`` as operator, and a THBC account of ``owner``."""
        await self.thbc_ready()
        if "payments" not in self.done:
            self.done.add("payments")
            assert self.thbc is not None
            await self.send([payments.initialize(PAYMENTS_ID, self.admin.pubkey(), self.thbc, self.owner.pubkey())],
                            [self.admin])
            self.thbc_account = await create_token_account(self.chain, self.owner, self.thbc, self.owner.pubkey())

    async def mints_ready(self) -> None:
        """GRID and THBC mints and a fee account; no market yet."""
        if self.market is None:
            self.market = await TradingSandbox.create(self.chain, TRADING_ID, self.admin, fee_bps=25,
                                                      initialize=False)

    async def market_ready(self) -> None:
        await self.mints_ready()
        assert self.market is not None
        if "market" not in self.done:
            self.done.add("market")
            m = self.market
            await self.send([trading.initialize_market(TRADING_ID, self.admin.pubkey(), m.grid_mint, m.thbc_mint,
                                                       m.fee_account, m.fee_bps)], [self.admin])
            self.seller = await m.trader(grid=10 * KWH, key=self.owner)


# --- every account-creating instruction, as a table --------------------------------------------------------

Seeds = tuple[list[bytes], Pubkey]  # seeds without the bump, and the program they derive under
Build = Callable[[World, Pubkey, int], tuple[list[Instruction], list[Keypair]]]


@dataclass(frozen=True)
class Creation:
    label: str
    program: str
    prepare: Callable[[World], Awaitable[None]]
    seeds: Callable[[World], Seeds]
    build: Build  # the instruction creating the account at `address` with `bump`, and its signers


async def _nothing(w: World) -> None:
    return None


def _order_key(w: World) -> Pubkey:
    return trading.order_address(TRADING_ID, w.owner.pubkey(), ORDER_ID)[0]


def _create_order(w: World, **kw: object) -> Instruction:
    assert w.market is not None and w.seller is not None
    return trading.create_order(TRADING_ID, w.owner.pubkey(), w.seller.grid, w.market.grid_mint, ORDER_ID, KWH,
                                4_100_000, NOW + 900, max_fee_bps=25, **kw)  # type: ignore[arg-type]


def _issue(w: World, **kw: object) -> Instruction:
    assert w.meter is not None
    return certs.issue(CERTS_ID, w.owner.pubkey(), w.meter, 0, 1_000, **kw)  # type: ignore[arg-type]


CREATIONS = [
    Creation("registry initialize: config", "registry", _nothing,
             lambda w: ([b"config"], REGISTRY_ID),
             lambda w, a, b: ([registry.initialize(REGISTRY_ID, w.admin.pubkey(), w.admin.pubkey(), config=a,
                                                   bump=b)], [w.admin])),
    Creation("registry register_user: user", "registry", World.registry_ready,
             lambda w: ([b"user", bytes(w.owner.pubkey())], REGISTRY_ID),
             lambda w, a, b: ([registry.register_user(REGISTRY_ID, w.owner.pubkey(), registry.UserKind.PROSUMER,
                                                      user=a, bump=b)], [w.owner])),
    Creation("registry register_meter: meter", "registry", World.user_ready,
             lambda w: ([b"meter", registry.meter_id_bytes(METER_ID)], REGISTRY_ID),
             lambda w, a, b: ([registry.register_meter(REGISTRY_ID, w.owner.pubkey(), METER_ID,
                                                       bytes(METER_KEY.verify_key), meter=a, bump=b)], [w.owner])),
    Creation("energy_token initialize: config", "energy_token", World.grid_mint_ready,
             lambda w: ([b"config"], ENERGY_ID),
             lambda w, a, b: ([energy.initialize(ENERGY_ID, w.admin.pubkey(), w.grid_mint,  # type: ignore[arg-type]
                                                 REGISTRY_ID, config=a, config_bump=b)], [w.admin])),
    Creation("certificates initialize: config", "certificates", _nothing,
             lambda w: ([b"config"], CERTS_ID),
             lambda w, a, b: ([certs.initialize(CERTS_ID, w.admin.pubkey(), w.admin.pubkey(), REGISTRY_ID, config=a,
                                                bump=b)], [w.admin])),
    Creation("certificates issue: mark", "certificates", World.certs_ready,
             lambda w: ([b"mark", bytes(w.meter)], CERTS_ID),  # type: ignore[arg-type]
             lambda w, a, b: ([_issue(w, mark=a, mark_bump=b)], [w.owner])),
    Creation("certificates issue: certificate", "certificates", World.certs_ready,
             lambda w: ([b"cert", bytes(w.meter), struct.pack("<Q", 0)], CERTS_ID),  # type: ignore[arg-type]
             lambda w, a, b: ([_issue(w, certificate=a, certificate_bump=b)], [w.owner])),
    Creation("trading initialize_market: market", "trading", World.mints_ready,
             lambda w: ([b"market"], TRADING_ID),
             lambda w, a, b: ([trading.initialize_market(
                 TRADING_ID, w.admin.pubkey(), w.market.grid_mint, w.market.thbc_mint,  # type: ignore[union-attr]
                 w.market.fee_account, 25, market=a, bump=b)], [w.admin])),  # type: ignore[union-attr]
    Creation("trading create_order: order", "trading", World.market_ready,
             lambda w: ([b"order", bytes(w.owner.pubkey()), struct.pack("<Q", ORDER_ID)], TRADING_ID),
             lambda w, a, b: ([_create_order(w, order=a, order_bump=b)], [w.owner])),
    Creation("trading create_order: vault", "trading", World.market_ready,
             lambda w: ([b"vault", bytes(_order_key(w))], TRADING_ID),
             lambda w, a, b: ([_create_order(w, vault=a, vault_bump=b)], [w.owner])),
    Creation("payments initialize: config", "payments", World.thbc_ready,
             lambda w: ([b"config"], PAYMENTS_ID),
             lambda w, a, b: ([payments.initialize(PAYMENTS_ID, w.admin.pubkey(), w.thbc,  # type: ignore[arg-type]
                                                   w.owner.pubkey(), config=a, config_bump=b)], [w.admin])),
    Creation("payments issue: deposit", "payments", World.payments_ready,
             lambda w: ([b"deposit", payments.reference_bytes("KBANK-1")], PAYMENTS_ID),
             lambda w, a, b: ([payments.issue(PAYMENTS_ID, w.owner.pubkey(), w.thbc, w.thbc_account,  # type: ignore
                                              "KBANK-1", 10**6, deposit=a, bump=b)], [w.owner])),
    Creation("hello initialize: greeting", "hello", _nothing,
             lambda w: ([b"greeting", bytes(w.owner.pubkey())], HELLO_ID),
             lambda w, a, b: ([hello.initialize(HELLO_ID, w.owner.pubkey(), greeting=a, bump=b)], [w.owner])),
]


@pytest.mark.parametrize("case", CREATIONS, ids=[c.label for c in CREATIONS])
async def test_creating_an_account_at_a_non_canonical_bump_is_refused(case: Creation) -> None:
    world = await World.fresh()
    await case.prepare(world)
    seeds, program = case.seeds(world)
    bump = non_canonical_bump(seeds, program)
    address = pda_at(seeds, bump, program)
    ixs, signers = case.build(world, address, bump)
    result = await refused_without_effect(world.chain, ERRORS[case.program], ixs, signers, "NonCanonicalBump",
                                          watch=[address])
    assert await world.chain.get_account(address) is None
    assert any("not the canonical bump" in line for line in result.logs), result.logs
    # The same instruction at the canonical address succeeds: it was the bump that was refused.
    canonical, canonical_bump = Pubkey.find_program_address(seeds, program)
    ixs, signers = case.build(world, canonical, canonical_bump)
    (await world.chain.send_transaction(ixs, signers)).raise_for_failure()
    assert await world.chain.get_account(canonical) is not None


async def test_the_payments_mint_authority_must_be_the_canonical_pda() -> None:
    world = await World.fresh()
    bump = non_canonical_bump([b"authority"], PAYMENTS_ID)
    mint = Keypair()
    lamports = await world.chain.minimum_balance(payments.MINT_LEN)
    other_authority = pda_at([b"authority"], bump, PAYMENTS_ID)
    await world.send(payments.create_thbc_mint(world.admin.pubkey(), mint.pubkey(), PAYMENTS_ID, lamports,
                                               mint_authority=other_authority), [world.admin, mint])
    ix = payments.initialize(PAYMENTS_ID, world.admin.pubkey(), mint.pubkey(), world.owner.pubkey(),
                             authority_bump=bump)
    await refused_without_effect(world.chain, payments.PAYMENTS_ERRORS, [ix], [world.admin], "NonCanonicalBump")


async def test_the_energy_token_authority_must_be_the_canonical_pda() -> None:
    """The authority PDA is no account, but it is GRID's mint authority and the registry's settlement
    authority: a mint handed to a non-canonical authority is refused before anything is created."""
    world = await World.fresh()
    await world.registry_ready()
    bump = non_canonical_bump([b"authority"], ENERGY_ID)
    other_authority = pda_at([b"authority"], bump, ENERGY_ID)
    mint = Keypair()
    lamports = await world.chain.minimum_balance(energy.MINT_LEN)
    await world.send(energy.create_grid_mint(world.admin.pubkey(), mint.pubkey(), other_authority, lamports),
                     [world.admin, mint])
    ix = energy.initialize(ENERGY_ID, world.admin.pubkey(), mint.pubkey(), REGISTRY_ID, authority_bump=bump)
    await refused_without_effect(world.chain, energy.ENERGY_TOKEN_ERRORS, [ix], [world.admin], "NonCanonicalBump")


# --- singletons ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Singleton:
    program: str
    prepare: Callable[[World], Awaitable[None]]
    seed: bytes
    program_id: Pubkey
    build: Callable[[World, Pubkey | None, int | None], Instruction]  # initialise at (address, bump)
    exists: str  # the error for a second initialisation at the canonical address


SINGLETONS = [
    Singleton("registry", _nothing, b"config", REGISTRY_ID,
              lambda w, a, b: registry.initialize(REGISTRY_ID, w.admin.pubkey(), w.admin.pubkey(), config=a, bump=b),
              "AlreadyRegistered"),
    Singleton("energy_token", World.grid_mint_ready, b"config", ENERGY_ID,
              lambda w, a, b: energy.initialize(ENERGY_ID, w.admin.pubkey(), w.grid_mint,  # type: ignore[arg-type]
                                                REGISTRY_ID, config=a, config_bump=b),
              "AccountAlreadyInitialized"),
    Singleton("certificates", _nothing, b"config", CERTS_ID,
              lambda w, a, b: certs.initialize(CERTS_ID, w.admin.pubkey(), w.admin.pubkey(), REGISTRY_ID, config=a,
                                               bump=b),
              "AccountAlreadyInitialized"),
    Singleton("payments", World.thbc_ready, b"config", PAYMENTS_ID,
              lambda w, a, b: payments.initialize(PAYMENTS_ID, w.admin.pubkey(), w.thbc,  # type: ignore[arg-type]
                                                  w.admin.pubkey(), config=a, config_bump=b),
              "AccountAlreadyInitialized"),
    # The review's second market charged 50 %: it must not be possible to open one beside the first.
    Singleton("trading", World.mints_ready, b"market", TRADING_ID,
              lambda w, a, b: trading.initialize_market(
                  TRADING_ID, w.admin.pubkey(), w.market.grid_mint, w.market.thbc_mint,  # type: ignore[union-attr]
                  w.market.fee_account, 5_000, market=a, bump=b),  # type: ignore[union-attr]
              "AccountAlreadyInitialized"),
]


@pytest.mark.parametrize("single", SINGLETONS, ids=[s.program for s in SINGLETONS])
async def test_a_second_config_or_market_cannot_exist(single: Singleton) -> None:
    world = await World.fresh()
    await single.prepare(world)
    (await world.chain.send_transaction([single.build(world, None, None)], [world.admin])).raise_for_failure()
    errors = ERRORS[single.program]
    # Again at the one address: it exists.
    await refused_without_effect(world.chain, errors, [single.build(world, None, None)], [world.admin], single.exists)
    # At every other valid bump of the same fixed seeds (up to a dozen of them): refused, nothing created.
    _, canonical_bump = Pubkey.find_program_address([single.seed], single.program_id)
    tried = 0
    for bump in range(canonical_bump - 1, -1, -1):
        try:
            address = pda_at([single.seed], bump, single.program_id)
        except Exception:  # no program address at this bump
            continue
        await refused_without_effect(world.chain, errors, [single.build(world, address, bump)], [world.admin],
                                     "NonCanonicalBump", watch=[address])
        tried += 1
        if tried == 12:
            break
    assert tried >= 8


# --- loaders: a copy elsewhere, or an account of another type --------------------------------------------

async def _copy(world: World, source: Pubkey, *, owner: Pubkey) -> Pubkey:
    """A byte-for-byte copy of ``source`` at a fresh address, owned by ``owner``."""
    found = await world.chain.get_account(source)
    assert found is not None
    copy = Pubkey.new_unique()
    world.chain.svm.set_account(copy, Account(found.lamports, bytes(found.data), owner, False, 0))
    return copy


async def _full_world() -> World:
    world = await World.fresh()
    await world.certs_ready()
    await world.market_ready()
    assert world.meter is not None
    (await world.chain.send_transaction([_issue(world)], [world.owner])).raise_for_failure()
    (await world.chain.send_transaction([_create_order(world)], [world.owner])).raise_for_failure()
    return world


def _cert(world: World) -> Pubkey:
    return certs.certificate_address(CERTS_ID, world.meter, 0)[0]  # type: ignore[arg-type]


def _next_reading() -> SignedReading:
    return sign(Reading(METER_ID, 3, NOW * 1000 + 10 * 60_000, 251_000, 190_000), METER_KEY)


def _buy(world: World, buyer: Trader) -> Instruction:
    assert world.market is not None and world.seller is not None
    return trading.buy(TRADING_ID, buyer.pubkey, world.owner.pubkey(), ORDER_ID, KWH // 2, buyer_grid=buyer.grid,
                       buyer_thbc=buyer.thbc, seller_thbc=world.seller.thbc, fee_account=world.market.fee_account)


# (label, program, the account to copy, the instruction, the index of that account in it, signer role)
SUBSTITUTIONS: list[tuple[str, str, Callable[[World], Pubkey], Callable[[World, Trader], Instruction], int, str]] = [
    ("registry config", "registry", lambda w: registry.config_address(REGISTRY_ID)[0],
     lambda w, b: registry.set_meter_status(REGISTRY_ID, w.admin.pubkey(), w.meter, 2), 1, "admin"),  # type: ignore
    ("registry meter", "registry", lambda w: w.meter,  # type: ignore[arg-type,return-value]
     lambda w, b: registry.set_meter_status(REGISTRY_ID, w.admin.pubkey(), w.meter, 2), 2, "admin"),  # type: ignore
    ("registry user", "registry", lambda w: registry.user_address(REGISTRY_ID, w.owner.pubkey())[0],
     lambda w, b: registry.register_meter(REGISTRY_ID, w.owner.pubkey(), "M-2", bytes(32)), 1, "owner"),
    ("energy_token config", "energy_token", lambda w: energy.config_address(ENERGY_ID)[0],
     lambda w, b: energy.settle_and_mint(ENERGY_ID, REGISTRY_ID, w.grid.mint, w.owner.pubkey(),  # type: ignore
                                         _next_reading().data), 0, "owner"),
    ("certificates config", "certificates", lambda w: certs.config_address(CERTS_ID)[0],
     lambda w, b: certs.validate(CERTS_ID, w.admin.pubkey(), _cert(w)), 1, "admin"),
    ("certificates mark", "certificates", lambda w: certs.mark_address(CERTS_ID, w.meter)[0],  # type: ignore
     lambda w, b: certs.issue(CERTS_ID, w.owner.pubkey(), w.meter, 1, 2_000), 3, "owner"),  # type: ignore
    ("certificates certificate", "certificates", _cert,
     lambda w, b: certs.validate(CERTS_ID, w.admin.pubkey(), _cert(w)), 2, "admin"),
    ("trading market", "trading", lambda w: trading.market_address(TRADING_ID)[0], _buy, 1, "buyer"),
    ("trading order", "trading", _order_key, _buy, 2, "buyer"),
]
PROGRAM_IDS = {"registry": REGISTRY_ID, "energy_token": ENERGY_ID, "certificates": CERTS_ID,
               "trading": TRADING_ID}


async def test_a_program_owned_copy_at_another_address_is_refused_by_the_loaders() -> None:
    """Each loader re-derives the account's address from the seeds it stores and its stored (canonical)
    bump: the same bytes at any other address, even owned by the program, are InvalidSeeds."""
    world = await _full_world()
    buyer = await world.market.trader(thbc=100 * 10**6)  # type: ignore[union-attr]
    signer = {"admin": world.admin, "owner": world.owner, "buyer": buyer.key}
    for label, program, source, build, index, role in SUBSTITUTIONS:
        copy = await _copy(world, source(world), owner=PROGRAM_IDS[program])
        ix = build(world, buyer)
        meta = ix.accounts[index]
        ix = with_account(ix, index, AccountMeta(copy, meta.is_signer, meta.is_writable))
        result = await world.chain.send_transaction([ix], [signer[role]])
        assert result.failure is not None, label
        assert ERRORS[program].name(result.failure) == "InvalidSeeds", (label, result.logs[-4:])


async def test_an_account_of_another_type_is_refused_where_one_is_expected() -> None:
    """Discriminator, version and size: a certificate where a mark is expected, an order where a market
    is, a user where a meter is, and back."""
    world = await _full_world()
    buyer = await world.market.trader(thbc=100 * 10**6)  # type: ignore[union-attr]
    signer = {"admin": world.admin, "owner": world.owner, "buyer": buyer.key}
    user = registry.user_address(REGISTRY_ID, world.owner.pubkey())[0]
    mark = certs.mark_address(CERTS_ID, world.meter)[0]  # type: ignore[arg-type]
    market = trading.market_address(TRADING_ID)[0]
    swaps = [  # (program, instruction, account index, the other account, role)
        ("registry", registry.set_meter_status(REGISTRY_ID, world.admin.pubkey(), world.meter, 2),  # type: ignore
         2, user, "admin"),
        ("registry", registry.set_meter_status(REGISTRY_ID, world.admin.pubkey(), world.meter, 2),  # type: ignore
         1, world.meter, "admin"),
        ("certificates", certs.issue(CERTS_ID, world.owner.pubkey(), world.meter, 1, 2_000),  # type: ignore
         3, _cert(world), "owner"),
        ("certificates", certs.validate(CERTS_ID, world.admin.pubkey(), _cert(world)), 2, mark, "admin"),
        ("certificates", certs.validate(CERTS_ID, world.admin.pubkey(), _cert(world)), 1, mark, "admin"),
        ("trading", _buy(world, buyer), 1, _order_key(world), "buyer"),
        ("trading", _buy(world, buyer), 2, market, "buyer"),
    ]
    for program, ix, index, other, role in swaps:
        meta = ix.accounts[index]
        swapped = with_account(ix, index, AccountMeta(other, meta.is_signer, meta.is_writable))
        result = await world.chain.send_transaction([swapped], [signer[role]])
        assert result.failure is not None, (program, index)
        name = ERRORS[program].name(result.failure)
        assert name in {"AccountWrongSize", "WrongAccountSize", "WrongAccountType"}, (program, index, name)


# --- the two attacks of the review, end to end -------------------------------------------------------------

_certs_refused = refused_by(certs.CERTIFICATES_ERRORS)


async def test_double_certification_is_refused_end_to_end() -> None:
    """The review's attack: the owner certifies 4,000 Wh, then passes a mark and a certificate at other
    valid bumps of the same seeds to certify the same Wh again. Refused at every bump; governance can
    validate only the one certificate and the holder retire only 4,000 Wh."""
    world = await World.fresh()
    await world.certs_ready()
    meter = world.meter
    assert meter is not None
    (await world.chain.send_transaction([certs.issue(CERTS_ID, world.owner.pubkey(), meter, 0, 4_000)],
                                        [world.owner])).raise_for_failure()
    mark_seeds = [b"mark", bytes(meter)]
    cert_seeds = [b"cert", bytes(meter), struct.pack("<Q", 0)]
    mark_bump, cert_bump = non_canonical_bump(mark_seeds, CERTS_ID), non_canonical_bump(cert_seeds, CERTS_ID)
    second_mark, second_cert = pda_at(mark_seeds, mark_bump, CERTS_ID), pda_at(cert_seeds, cert_bump, CERTS_ID)
    attack = certs.issue(CERTS_ID, world.owner.pubkey(), meter, 0, 4_000, mark=second_mark, mark_bump=mark_bump,
                         certificate=second_cert, certificate_bump=cert_bump)
    await refused_without_effect(world.chain, certs.CERTIFICATES_ERRORS, [attack], [world.owner], "NonCanonicalBump")
    # Through the canonical mark it is the ordinary double certification, refused as such.
    again = certs.issue(CERTS_ID, world.owner.pubkey(), meter, 1, 4_000)
    await refused_without_effect(world.chain, certs.CERTIFICATES_ERRORS, [again], [world.owner], "AlreadyCertified")
    # Only the one certificate exists to validate and retire.
    first = certs.certificate_address(CERTS_ID, meter, 0)[0]
    (await world.chain.send_transaction([certs.validate(CERTS_ID, world.admin.pubkey(), first)], [world.admin])
     ).raise_for_failure()
    (await world.chain.send_transaction([certs.retire(CERTS_ID, world.owner.pubkey(), first)], [world.owner])
     ).raise_for_failure()
    _certs_refused(await world.chain.send_transaction([certs.validate(CERTS_ID, world.admin.pubkey(), second_cert)],
                                                      [world.admin]), "InvalidAccountOwner")
    found = await world.chain.get_account(certs.mark_address(CERTS_ID, meter)[0])
    assert found is not None
    mark = certs.CertMark.decode(bytes(found.data))
    assert (mark.certified_up_to_wh, mark.next_index) == (4_000, 1)


async def test_duplicate_meter_is_refused_end_to_end() -> None:
    """The review's attack: a registered user registers the victim's meter id at another bump with the
    victim's public device key, so that the victim's public signed readings mint twice. Registration is
    refused; and even a meter account that sits at a non-canonical address (as the old registry let
    exist) mints nothing and certifies nothing: the energy token and the certificates program accept
    only the canonical PDA of the meter id the account holds."""
    world = await World.fresh()
    await world.certs_ready()
    assert world.grid is not None and world.meter is not None
    victim_key = bytes(METER_KEY.verify_key)
    attacker = await funded(world.chain)
    (await world.chain.send_transaction([registry.register_user(REGISTRY_ID, attacker.pubkey(),
                                                                registry.UserKind.PROSUMER)], [attacker])
     ).raise_for_failure()
    seeds = [b"meter", registry.meter_id_bytes(METER_ID)]
    bump = non_canonical_bump(seeds, REGISTRY_ID)
    duplicate = pda_at(seeds, bump, REGISTRY_ID)
    ix = registry.register_meter(REGISTRY_ID, attacker.pubkey(), METER_ID, victim_key, meter=duplicate, bump=bump)
    await refused_without_effect(world.chain, registry.REGISTRY_ERRORS, [ix], [attacker], "NonCanonicalBump")
    assert await world.chain.get_account(duplicate) is None

    # A duplicate as the old registry would have left it: a copy of the victim's meter, at the other
    # bump, its stored bump saying so, Active, owned by the registry.
    found = await world.chain.get_account(world.meter)
    assert found is not None
    data = bytearray(found.data)
    data[2] = bump
    world.chain.svm.set_account(duplicate, Account(found.lamports, bytes(data), REGISTRY_ID, False, 0))
    supply_before = await _supply(world)
    victims_grid = get_associated_token_address(world.owner.pubkey(), world.grid.mint)
    grid_before = await token_amount(world.chain, victims_grid)
    signed = _next_reading()
    relay = energy.settle_transaction(ENERGY_ID, REGISTRY_ID, world.grid.mint, world.owner.pubkey(), signed,
                                      victim_key, meter=duplicate)
    await refused_without_effect(world.chain, energy.ENERGY_TOKEN_ERRORS, list(relay), [attacker],
                                 "NonCanonicalBump")
    issue = certs.issue(CERTS_ID, world.owner.pubkey(), duplicate, 0, 1_000)
    await refused_without_effect(world.chain, certs.CERTIFICATES_ERRORS, [issue], [world.owner], "NonCanonicalBump")
    # The same reading through the one canonical meter mints once, as it should.
    (await world.chain.send_transaction(list(energy.settle_transaction(
        ENERGY_ID, REGISTRY_ID, world.grid.mint, world.owner.pubkey(), signed, victim_key)), [attacker])
     ).raise_for_failure()
    assert await _supply(world) == supply_before + 5_000 * energy.BASE_UNITS_PER_WH
    assert await token_amount(world.chain, victims_grid) == grid_before + 5_000 * energy.BASE_UNITS_PER_WH


async def _supply(world: World) -> int:
    assert world.grid is not None
    found = await world.chain.get_account(world.grid.mint)
    assert found is not None
    return int(struct.unpack_from("<Q", bytes(found.data), 36)[0])
