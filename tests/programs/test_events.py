"""Program events (docs/programs.md "Events"): every instruction of every program emits exactly its events
with the right fields; the decoder attributes events to the program that logged them (through CPI, past
precompile instructions, never to an impostor), notices truncated logs, and refuses bytes it cannot
decode; the C tags, the C layouts, the Python decoders and the documented table agree."""

from __future__ import annotations

import base64
import hashlib
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from nacl.signing import SigningKey
from program_testkit import TRADING_ID, funded, needs_clang, set_unix_time
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from spl.token.instructions import get_associated_token_address

from gridtokenx.reading import Reading, sign
from programs.certificates import client as certs
from programs.client import LiteSVMChain, TxResult, add_program_with_authority, program_so
from programs.client.events import (
    EVENT_HEADER_LEN,
    EventDecodeError,
    EventsTruncated,
    ProgramEvents,
    decode_log_events,
    event_tag,
)
from programs.energy_token import client as energy
from programs.energy_token.bootstrap import bootstrap, register_active_meter
from programs.events import CATALOGUES, decode_result_events, decode_transaction_events
from programs.hello import client as hello
from programs.registry import client as registry
from programs.toolchain.linker import link
from programs.trading import client as trading
from programs.trading.sandbox import TradingSandbox

pytestmark = pytest.mark.chain

ROOT = Path(__file__).resolve().parents[2]
REGISTRY_ID = Keypair.from_seed(bytes([0x81]) * 32).pubkey()
ENERGY_ID = Keypair.from_seed(bytes([0x82]) * 32).pubkey()
CERTS_ID = Keypair.from_seed(bytes([0x83]) * 32).pubkey()
IDS = {"registry": REGISTRY_ID, "energy_token": ENERGY_ID, "certificates": CERTS_ID, "trading": TRADING_ID}
NOW = 1_764_072_000
KWH = trading.GRID_PER_KWH
METER_ID = "SDM630-000042"
METER_KEY = SigningKey(bytes([0x43]) * 32)
ALL = {**CATALOGUES, "hello": hello.EVENTS}


@dataclass
class World:
    chain: LiteSVMChain
    admin: Keypair
    owner: Keypair

    async def send(self, ixs: list[Instruction], *signers: Keypair) -> TxResult:
        result = await self.chain.send_transaction(ixs, list(signers))
        return result.raise_for_failure()

    def events(self, result: TxResult) -> list[tuple[str, int, object]]:
        """(program, invoke depth, event) of every event of ours in the transaction."""
        return [(e.program, e.depth, e.event) for e in decode_result_events(result, IDS)]


@pytest.fixture
async def world() -> World:
    chain = LiteSVMChain()
    set_unix_time(chain, NOW)
    admin, owner = await funded(chain), await funded(chain)
    for name, program_id in IDS.items():
        add_program_with_authority(chain, program_id, program_so(name), admin.pubkey())
    return World(chain, admin, owner)


def _meter() -> Pubkey:
    return registry.meter_address(REGISTRY_ID, METER_ID)[0]


# --- every instruction emits exactly its events ---------------------------------------------------------

async def test_registry_instructions_emit_exactly_their_events(world: World) -> None:
    admin, owner, settler = world.admin, world.owner, await funded(world.chain)
    config = registry.config_address(REGISTRY_ID)[0]
    r = await world.send([registry.initialize(REGISTRY_ID, admin.pubkey(), settler.pubkey())], admin)
    assert world.events(r) == [("registry", 1, registry.RegistryInitialized(config, admin.pubkey(),
                                                                            settler.pubkey()))]
    r = await world.send([registry.register_user(REGISTRY_ID, owner.pubkey(), registry.UserKind.PROSUMER)], owner)
    user = registry.user_address(REGISTRY_ID, owner.pubkey())[0]
    assert world.events(r) == [("registry", 1, registry.UserRegistered(owner.pubkey(), user, 1, NOW))]
    key = bytes(METER_KEY.verify_key)
    r = await world.send([registry.register_meter(REGISTRY_ID, owner.pubkey(), METER_ID, key)], owner)
    meter, k = _meter(), Pubkey.from_bytes(key)
    assert world.events(r) == [("registry", 1, registry.MeterRegistered(meter, METER_ID, owner.pubkey(), k, NOW))]
    r = await world.send([registry.set_meter_status(REGISTRY_ID, admin.pubkey(), meter, 1)], admin)
    assert world.events(r) == [("registry", 1, registry.MeterStatusChanged(meter, METER_ID, owner.pubkey(), 0, 1))]
    ix = registry.record_settlement(REGISTRY_ID, settler.pubkey(), meter, seq=4, timestamp_ms=5, import_wh=100,
                                    export_wh=700, settled_net_generation_wh=600)
    r = await world.send([ix], settler)
    assert world.events(r) == [("registry", 1, registry.SettlementRecorded(meter, METER_ID, owner.pubkey(), 4, 5, 100,
                                                                           700, 600, 600, 1))]
    new_key = Pubkey.new_unique()
    r = await world.send([registry.set_meter_key(REGISTRY_ID, admin.pubkey(), meter, bytes(new_key))], admin)
    assert world.events(r) == [("registry", 1, registry.MeterKeyChanged(meter, METER_ID, owner.pubkey(), k, new_key))]
    # Reassignment needs a never-settled meter and a second user.
    other = await funded(world.chain)
    await world.send([registry.register_user(REGISTRY_ID, other.pubkey(), registry.UserKind.CONSUMER)], other)
    await world.send([registry.register_meter(REGISTRY_ID, owner.pubkey(), "M-2", key)], owner)
    m2 = registry.meter_address(REGISTRY_ID, "M-2")[0]
    ix = registry.reassign_meter(REGISTRY_ID, admin.pubkey(), m2, owner.pubkey(), other.pubkey(), bytes(new_key))
    r = await world.send([ix], admin)
    assert world.events(r) == [("registry", 1, registry.MeterReassigned(m2, "M-2", owner.pubkey(), other.pubkey(),
                                                                        new_key, 0, 0))]


async def test_energy_token_instructions_emit_exactly_their_events(world: World) -> None:
    """SettleAndMint logs its own event and the registry's SettlementRecorded inside the CPI (depth 2)."""
    mint = Keypair()
    grid = await bootstrap(world.chain, world.admin, REGISTRY_ID, ENERGY_ID, mint=mint)
    key = bytes(METER_KEY.verify_key)
    await register_active_meter(world.chain, grid, world.admin, world.owner, METER_ID, key)
    owner, meter = world.owner.pubkey(), _meter()
    destination = get_associated_token_address(owner, grid.mint)

    async def settle(seq: int, imp: int, exp: int) -> list[tuple[str, int, object]]:
        signed = sign(Reading(METER_ID, seq, NOW * 1000 + seq, imp, exp), METER_KEY)
        return world.events(await world.send(list(energy.settle_transaction(
            ENERGY_ID, REGISTRY_ID, grid.mint, owner, signed, key)), world.owner))

    assert await settle(1, 900, 400) == [
        ("registry", 2, registry.SettlementRecorded(meter, METER_ID, owner, 1, NOW * 1000 + 1, 900, 400, -500, -500,
                                                    1)),
        ("energy_token", 1, energy.BaselineRecorded(meter, METER_ID, owner, 1, NOW * 1000 + 1, 900, 400, -500))]
    assert await settle(2, 900, 1_400) == [
        ("registry", 2, registry.SettlementRecorded(meter, METER_ID, owner, 2, NOW * 1000 + 2, 900, 1_400, 500, -500,
                                                    2)),
        ("energy_token", 1, energy.GridMinted(meter, METER_ID, owner, destination, 2, NOW * 1000 + 2, 900, 1_400,
                                              -500, 500, 1_000 * energy.BASE_UNITS_PER_WH))]
    # Net generation below the mark: recorded, nothing minted, the mark stays.
    assert await settle(3, 1_200, 1_400) == [
        ("registry", 2, registry.SettlementRecorded(meter, METER_ID, owner, 3, NOW * 1000 + 3, 1_200, 1_400, 500,
                                                    -500, 3)),
        ("energy_token", 1, energy.GridMinted(meter, METER_ID, owner, destination, 3, NOW * 1000 + 3, 1_200, 1_400,
                                              500, 500, 0))]


async def test_energy_token_initialize_emits_its_event(world: World) -> None:
    authority = energy.authority_address(ENERGY_ID)[0]
    await world.send([registry.initialize(REGISTRY_ID, world.admin.pubkey(), authority)], world.admin)
    mint = Keypair()
    lamports = await world.chain.minimum_balance(energy.MINT_LEN)
    await world.send(energy.create_grid_mint(world.admin.pubkey(), mint.pubkey(), authority, lamports), world.admin,
                     mint)
    r = await world.send([energy.initialize(ENERGY_ID, world.admin.pubkey(), mint.pubkey(), REGISTRY_ID)],
                         world.admin)
    assert world.events(r) == [("energy_token", 1, energy.EnergyTokenInitialized(
        energy.config_address(ENERGY_ID)[0], REGISTRY_ID, mint.pubkey(), authority))]


async def test_certificates_instructions_emit_exactly_their_events(world: World) -> None:
    grid = await bootstrap(world.chain, world.admin, REGISTRY_ID, ENERGY_ID)
    key = bytes(METER_KEY.verify_key)
    await register_active_meter(world.chain, grid, world.admin, world.owner, METER_ID, key)
    for seq, exp in ((1, 1_000), (2, 9_000)):
        signed = sign(Reading(METER_ID, seq, NOW * 1000 + seq, 0, exp), METER_KEY)
        await world.send(list(energy.settle_transaction(ENERGY_ID, REGISTRY_ID, grid.mint, world.owner.pubkey(),
                                                        signed, key)), world.owner)
    gov, owner, meter = world.admin, world.owner.pubkey(), _meter()
    year = certs.ONE_YEAR_SECONDS
    r = await world.send([certs.initialize(CERTS_ID, gov.pubkey(), gov.pubkey(), REGISTRY_ID)], gov)
    assert world.events(r) == [("certificates", 1, certs.CertificatesInitialized(
        certs.config_address(CERTS_ID)[0], gov.pubkey(), REGISTRY_ID, year))]

    def cert(i: int) -> Pubkey:
        return certs.certificate_address(CERTS_ID, meter, i)[0]

    r = await world.send([certs.issue(CERTS_ID, owner, meter, 0, 3_000)], world.owner)
    assert world.events(r) == [("certificates", 1, certs.CertificateIssued(
        cert(0), meter, owner, 0, 0, 3_000, 0, NOW, NOW + year, METER_ID))]
    set_unix_time(world.chain, NOW + 10)
    r = await world.send([certs.validate(CERTS_ID, gov.pubkey(), cert(0))], gov)
    assert world.events(r) == [("certificates", 1, certs.CertificateValidated(
        cert(0), meter, owner, 0, 0, 3_000, 1, NOW + 10, gov.pubkey()))]
    buyer = Pubkey.new_unique()
    r = await world.send([certs.transfer(CERTS_ID, owner, cert(0), buyer)], world.owner)
    assert world.events(r) == [("certificates", 1, certs.CertificateTransferred(
        cert(0), meter, buyer, 0, 0, 3_000, 1, NOW + 10, owner))]
    await world.send([certs.issue(CERTS_ID, owner, meter, 1, 5_000)], world.owner)
    await world.send([certs.validate(CERTS_ID, gov.pubkey(), cert(1))], gov)
    r = await world.send([certs.retire(CERTS_ID, owner, cert(1))], world.owner)
    assert world.events(r) == [("certificates", 1, certs.CertificateRetired(
        cert(1), meter, owner, 1, 3_000, 5_000, 2, NOW + 10))]
    await world.send([certs.issue(CERTS_ID, owner, meter, 2, 6_000)], world.owner)
    r = await world.send([certs.revoke(CERTS_ID, gov.pubkey(), cert(2), 7)], gov)
    assert world.events(r) == [("certificates", 1, certs.CertificateRevoked(
        cert(2), meter, owner, 2, 5_000, 6_000, 3, NOW + 10, 7, gov.pubkey()))]
    await world.send([certs.issue(CERTS_ID, owner, meter, 3, 7_000)], world.owner)
    set_unix_time(world.chain, NOW + 10 + year)
    r = await world.send([certs.expire(CERTS_ID, cert(3))], world.owner)
    assert world.events(r) == [("certificates", 1, certs.CertificateExpired(
        cert(3), meter, owner, 3, 6_000, 7_000, 4, NOW + 10 + year))]


async def test_trading_instructions_emit_exactly_their_events(world: World) -> None:
    market = await TradingSandbox.create(world.chain, TRADING_ID, world.admin, fee_bps=25, initialize=False)
    admin = world.admin.pubkey()
    market_key = trading.market_address(TRADING_ID)[0]
    r = await world.send([trading.initialize_market(TRADING_ID, admin, market.grid_mint, market.thbc_mint,
                                                    market.fee_account, 25)], world.admin)
    assert world.events(r) == [("trading", 1, trading.MarketInitialized(
        market_key, admin, market.grid_mint, market.thbc_mint, market.fee_account, 25, 9, 6))]
    seller = await market.trader(grid=10 * KWH)
    buyer = await market.trader(thbc=100 * 10**6)
    ix, order_id = market.create_order_ix(seller, 4 * KWH, 4_100_000, NOW + 900, max_fee_bps=30)
    r = await world.send([ix], seller.key)
    order = trading.order_address(TRADING_ID, seller.pubkey, order_id)[0]
    vault = trading.vault_address(TRADING_ID, order)[0]
    assert world.events(r) == [("trading", 1, trading.OrderCreated(
        order, market_key, seller.pubkey, vault, seller.grid, order_id, 4 * KWH, 4_100_000, NOW + 900, NOW, 25, 30))]
    r = await world.send([market.buy_ix(buyer, seller, order_id, KWH)], buyer.key)
    assert world.events(r) == [
        ("trading", 1, trading.OrderFilled(order, seller.pubkey, buyer.pubkey, KWH, 4_100_000, 10_250, 3 * KWH,
                                           4_089_750, trading.OrderState.PARTIALLY_FILLED)),
        ("trading", 1, trading.TradeExecuted(order, seller.pubkey, buyer.pubkey, buyer.pubkey, market.fee_account,
                                             KWH, KWH, 4_100_000, 4_100_000, 10_250, NOW))]
    r = await world.send([trading.update_market(TRADING_ID, admin, market.fee_account, 40)], world.admin)
    assert world.events(r) == [("trading", 1, trading.MarketUpdated(market_key, admin, market.fee_account,
                                                                     market.fee_account, 25, 40))]
    r = await world.send([trading.cancel_order(TRADING_ID, seller.pubkey, order_id, seller.grid)], seller.key)
    assert world.events(r) == [("trading", 1, trading.OrderCancelled(order, seller.pubkey, seller.grid, 3 * KWH,
                                                                      3 * KWH, NOW))]
    lamports = (await world.chain.get_account(order)).lamports  # type: ignore[union-attr]
    r = await world.send([trading.close_order(TRADING_ID, seller.pubkey, order_id)], seller.key)
    assert world.events(r) == [("trading", 1, trading.OrderClosed(order, seller.pubkey,
                                                                   trading.OrderState.CANCELLED, lamports))]
    market.fee_bps = 40
    ix, expiring = market.create_order_ix(seller, KWH, 4_100_000, NOW + 60)
    await world.send([ix], seller.key)
    set_unix_time(world.chain, NOW + 60)
    expiring_order = trading.order_address(TRADING_ID, seller.pubkey, expiring)[0]
    r = await world.send([trading.expire_order(TRADING_ID, seller.pubkey, expiring, seller.grid)], buyer.key)
    assert world.events(r) == [("trading", 1, trading.OrderExpired(expiring_order, seller.pubkey, seller.grid, KWH,
                                                                    KWH, NOW + 60))]


async def test_hello_events(world: World) -> None:
    program = Pubkey.new_unique()
    world.chain.add_program(program, program_so("hello"))
    greeting = hello.greeting_address(program, world.owner.pubkey())[0]
    r = await world.send([hello.initialize(program, world.owner.pubkey()),
                          hello.greet(program, world.owner.pubkey(), 5)], world.owner)
    assert hello.decode_events(r, program) == [hello.GreetingCreated(greeting, world.owner.pubkey()),
                                               hello.Greeted(greeting, world.owner.pubkey(), 5, 1, 5)]


# --- attribution -----------------------------------------------------------------------------------------

async def test_events_are_attributed_through_cpi_and_past_the_precompile(world: World) -> None:
    grid = await bootstrap(world.chain, world.admin, REGISTRY_ID, ENERGY_ID)
    key = bytes(METER_KEY.verify_key)
    await register_active_meter(world.chain, grid, world.admin, world.owner, METER_ID, key)
    signed = sign(Reading(METER_ID, 1, NOW * 1000, 0, 100), METER_KEY)
    ixs = list(energy.settle_transaction(ENERGY_ID, REGISTRY_ID, grid.mint, world.owner.pubkey(), signed, key))
    result = await world.send(ixs, world.owner)
    found = decode_transaction_events(result.logs, IDS, instruction_programs=[ix.program_id for ix in ixs])
    # Instruction 0 is the Ed25519 precompile, which logs nothing; the settlement is instruction 1.
    assert [(e.program, e.program_id, e.instruction_index, e.depth, e.index) for e in found.complete()] == [
        ("registry", REGISTRY_ID, 1, 2, 0), ("energy_token", ENERGY_ID, 1, 1, 1)]
    # Without the message, "invoke [1]" lines are all there is to count: one too few.
    assert {e.instruction_index for e in decode_transaction_events(result.logs, IDS).events} == {0}
    # Only the programs named are decoded: the registry's event is not the energy token's.
    only_energy = decode_transaction_events(result.logs, {"energy_token": ENERGY_ID})
    assert [type(e.event) for e in only_energy.events] == [energy.BaselineRecorded]


IMPOSTOR_C = r"""
#include <gtx_sol.h>
/* Logs its instruction data as one sol_log_data field: any bytes, ours included. */
uint64_t entrypoint(const uint8_t *input) {
  SolAccountInfo a[1];
  GtxInput in;
  gtx_deserialize(input, a, 1, &in);
  gtx_emit(in.data, in.data_len);
  return SUCCESS;
}
"""


@pytest.mark.tool
@needs_clang
async def test_an_event_logged_by_another_program_is_not_ours(world: World,
                                                             compile_c: Callable[[str, str], bytes]) -> None:
    impostor = Pubkey.new_unique()
    world.chain.add_program(impostor, link([("impostor.c", compile_c(IMPOSTOR_C, "impostor"))]))
    fake = (trading.TradeExecuted.layout.tag + b"\x01" + bytes(5 * 32) + struct.pack("<QQQQQq", KWH, KWH, 1, 1, 0, 0))
    assert len(fake) == trading.TradeExecuted.layout.size
    result = await world.send([Instruction(impostor, fake, [])], world.owner)
    assert result.events() == [[fake]]  # it is in the logs, byte for byte ...
    assert decode_result_events(result, IDS) == []  # ... but logged by a program that is not ours
    # The same bytes attributed to the trading program would decode: the tag is ours.
    assert isinstance(trading.EVENTS.decode(fake), trading.TradeExecuted)


def _logs(program: Pubkey, *data: bytes) -> list[str]:
    return [f"Program {program} invoke [1]", *(f"Program data: {base64.b64encode(d).decode()}" for d in data),
            f"Program {program} success"]


def test_bytes_our_program_logged_that_no_decoder_knows_are_refused() -> None:
    good = trading.OrderClosed.layout.tag + b"\x01" + bytes(64) + b"\x04" + bytes(8)
    programs = {TRADING_ID: trading.EVENTS}
    [event] = decode_log_events(_logs(TRADING_ID, good), programs).complete()
    assert event.event == trading.OrderClosed(Pubkey.default(), Pubkey.default(), 4, 0)
    for bad, why in ((bytes(82), "unknown event tag"), (good[:8] + b"\x02" + good[9:], "version"),
                     (good + b"\x00", "bytes, expected")):
        with pytest.raises(EventDecodeError, match=why):
            decode_log_events(_logs(TRADING_ID, bad), programs)
    two_fields = [f"Program {TRADING_ID} invoke [1]", "Program data: AAAA AAAA", f"Program {TRADING_ID} success"]
    with pytest.raises(EventDecodeError, match="one field"):
        decode_log_events(two_fields, programs)


def test_a_failed_inner_program_pops_the_stack() -> None:
    other = Pubkey.new_unique()
    good = trading.OrderClosed.layout.tag + b"\x01" + bytes(73)
    logs = [f"Program {TRADING_ID} invoke [1]", f"Program {other} invoke [2]", f"Program {other} failed: oops",
            f"Program data: {base64.b64encode(good).decode()}", f"Program {TRADING_ID} success"]
    [event] = decode_log_events(logs, {TRADING_ID: trading.EVENTS}).complete()
    assert (event.program_id, event.depth) == (TRADING_ID, 1)


async def test_truncated_logs_are_noticed(world: World) -> None:
    """A cluster keeps 10,000 bytes of logs; a transaction with many fills loses its later events."""
    market = await TradingSandbox.create(world.chain, TRADING_ID, world.admin, fee_bps=25)
    seller, buyer = await market.trader(grid=KWH), await market.trader(thbc=10**6)
    ix, order_id = market.create_order_ix(seller, 1_000, 4_100_000, NOW + 900)
    await world.send([ix], seller.key)
    result = await world.send([market.buy_ix(buyer, seller, order_id, 1) for _ in range(16)], buyer.key)
    found = result.decode_events({TRADING_ID: trading.EVENTS})
    assert found.truncated and "Log truncated" in result.logs
    assert 0 < len(found.of(trading.TradeExecuted)) < 16
    with pytest.raises(EventsTruncated):
        found.complete()
    with pytest.raises(EventsTruncated):
        trading.decode_events(result, TRADING_ID)


# --- C tags and layouts, Python decoders, documentation: one catalogue -----------------------------------

def _c_tags(program: str) -> dict[str, bytes]:
    source = (ROOT / "programs" / program / "src" / "events.h").read_text()
    return {name: bytes(int(b, 16) for b in body.split(","))
            for name, body in re.findall(r"GTX_EVENT_TAG\((\w+), ([0-9a-fx, ]+)\);", source)}


def _c_sizes(program: str) -> dict[str, int]:
    source = (ROOT / "programs" / program / "src" / "events.h").read_text()
    sizes: dict[str, int] = {}
    for size, names in re.findall(r'_Static_assert\(sizeof\(\w+\) == (\d+), "([\w /]+) layout"\)', source):
        for name in names.split(" / "):
            sizes[name] = int(size)
    return sizes


@pytest.mark.parametrize("program", sorted(ALL))
def test_c_tags_are_the_hash_of_the_names_and_match_the_decoders(program: str) -> None:
    tags = _c_tags(program)
    assert tags == {layout.name: layout.tag for layout in ALL[program].layouts()}
    for name, tag in tags.items():
        assert tag == hashlib.sha256(b"gridtokenx:event:" + name.encode()).digest()[:8] == event_tag(name)


@pytest.mark.parametrize("program", sorted(ALL))
def test_c_layout_sizes_match_the_decoders(program: str) -> None:
    assert _c_sizes(program) == {layout.name: layout.size for layout in ALL[program].layouts()}


def test_tags_are_unique_across_programs() -> None:
    tags = [layout.tag for catalogue in ALL.values() for layout in catalogue.layouts()]
    assert len(tags) == len(set(tags))


_TYPES = {"B": "u8", "H": "u16", "Q": "u64", "q": "i64", "32s": "", "16s": "", "32s|raw": ""}


def _documented() -> dict[str, tuple[str, int, int, str]]:
    """event name -> (program, version, size, fields cell) from docs/programs.md "Events"."""
    text = (ROOT / "docs" / "programs.md").read_text()
    section = text[text.index("\n## Events\n"):]
    section = section[:section.index("\n## ", 1)]
    rows = re.findall(r"^\| (\w+) \| (\w+) \| (\d+) \| (\d+) \| [^|]+ \| ([^|]+) \|$", section, re.M)
    return {name: (program, int(version), int(size), fields.strip()) for program, name, version, size, fields in rows}


def test_the_documented_table_is_the_catalogue() -> None:
    documented = _documented()
    assert sorted(documented) == sorted(layout.name for c in ALL.values() for layout in c.layouts())
    for program, catalogue in ALL.items():
        for layout in catalogue.layouts():
            doc_program, version, size, cell = documented[layout.name]
            assert (doc_program, version, size) == (program, layout.version, layout.size), layout.name
            fields = re.findall(r"`\[(\d+)(?:\.\.(\d+))?\]` (\w+)(?: (u8|u16|u64|i64))?(?: \(\d+ bytes\))?", cell)
            got = [(int(a), int(b) if b else int(a) + 1, name, kind) for a, b, name, kind in fields]
            expected = [(start, end, name, _TYPES[code]) for name, start, end, code in layout.offsets()]
            assert got == expected, layout.name
            assert got[0][0] == EVENT_HEADER_LEN and got[-1][1] == size


def test_a_catalogue_refuses_two_events_with_one_tag() -> None:
    with pytest.raises(ValueError, match="two events"):
        ProgramEvents("twice", [trading.OrderClosed, trading.OrderClosed])


def test_an_event_class_without_wire_types_is_refused() -> None:
    from programs.client.events import event

    with pytest.raises(TypeError, match="no wire type"):
        @event("Broken")
        @dataclass(frozen=True)
        class Broken:
            amount: int

