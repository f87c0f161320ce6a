"""A small GridTokenX market on a chain served over JSON-RPC, built through the programs' own instructions, for
the audit's tests: two prosumers and a consumer, settlements (baselines, surplus, a consumer's reading, a
key rotation), THBC issued and redeemed, orders bought, cancelled and expired, certificates issued,
validated and retired, GRID consumed.

Every transaction goes through RpcChain → HTTP → LiteSVMRpcServer, so the server's record of transactions
is what the audit walks (getSignaturesForAddress / getTransaction), as it would walk a cluster's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from nacl.signing import SigningKey
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from spl.token.instructions import create_associated_token_account, get_associated_token_address

from gridtokenx.reading import Reading, SignedReading, sign
from programs.certificates import client as certificates
from programs.client.artifacts import program_so
from programs.client.chain import LiteSVMChain, RpcChain
from programs.client.deploy import add_program_with_authority
from programs.client.litesvm_rpc import LiteSVMRpcServer
from programs.energy_token import client as energy
from programs.energy_token.bootstrap import GridDeployment, RegisteredMeter, bootstrap, register_active_meter
from programs.payments import client as payments
from programs.registry import client as registry
from programs.trading import client as trading
from programs.trading.sandbox import create_token_account

__all__ = ["GATEWAY_KEY", "NEW_KEY", "AuditWorld", "build_world"]

GATEWAY_KEY = SigningKey(b"\x21" * 32)
NEW_KEY = SigningKey(b"\x22" * 32)  # the replacement gateway's key after SetMeterKey
T0 = 1_764_072_000_000
PRICE = 3_500_000
KWH = 10**9
FEE_BPS = 25
NAMES = ("registry", "energy_token", "trading", "certificates", "payments")


@dataclass
class AuditWorld:
    server: LiteSVMRpcServer
    chain: RpcChain
    ids: dict[str, Pubkey]
    grid: GridDeployment
    admin: Keypair
    operator: Keypair
    thbc_mint: Pubkey
    fee_account: Pubkey
    meters: dict[str, tuple[Keypair, RegisteredMeter]] = field(default_factory=dict)
    settled: list[tuple[SignedReading, str]] = field(default_factory=list)  # (reading, transaction signature)
    orders: dict[str, Pubkey] = field(default_factory=dict)  # label -> order address
    # D7 as a faithful indexer would record it: (signature, kind, wallet, asset, amount, reference)
    payments: list[tuple[str, str, str, str, int, str | None]] = field(default_factory=list)
    consumer: Keypair | None = None

    @property
    def url(self) -> str:
        return self.server.url

    def deployment_file(self, directory: Path) -> Path:
        path = directory / "deployment.json"
        path.write_text(json.dumps({"version": 1, "programs": {n: str(p) for n, p in self.ids.items()}}))
        return path

    async def settle(self, meter_id: str, seq: int, import_wh: int, export_wh: int, *,
                     key: SigningKey = GATEWAY_KEY) -> str:
        meter = self.meters[meter_id][1]
        signed = sign(Reading(meter_id, seq, T0 + seq * 60_000, import_wh, export_wh, power_w=-500), key)
        ixs = energy.settle_transaction(self.ids["energy_token"], self.ids["registry"], self.grid.mint, meter.owner,
                                        signed, bytes(key.verify_key))
        result = (await self.chain.send_transaction(ixs, [self.admin])).raise_for_failure()
        self.settled.append((signed, str(result.signature)))
        return str(result.signature)


async def build_world(server: LiteSVMRpcServer) -> AuditWorld:
    """Deploy every program on ``server`` and run the market scenario; returns what the tests tamper with."""
    loader = LiteSVMChain(server.svm)
    admin, operator = Keypair(), Keypair()
    ids = {name: Keypair().pubkey() for name in NAMES}
    for name, pid in ids.items():
        add_program_with_authority(loader, pid, program_so(name), admin.pubkey())
    chain = RpcChain(server.url, poll_interval=0.005)
    await chain.fund(admin.pubkey(), 100 * 10**9)
    await chain.fund(operator.pubkey(), 10**9)
    grid = await bootstrap(chain, admin, ids["registry"], ids["energy_token"])
    thbc = await payments.bootstrap(chain, admin, ids["payments"], operator.pubkey())
    fee_account = await create_token_account(chain, admin, thbc.mint, admin.pubkey())
    (await chain.send_transaction([
        trading.initialize_market(ids["trading"], admin.pubkey(), grid.mint, thbc.mint, fee_account, FEE_BPS),
        certificates.initialize(ids["certificates"], admin.pubkey(), admin.pubkey(), ids["registry"]),
    ], [admin])).raise_for_failure()
    world = AuditWorld(server, chain, ids, grid, admin, operator, thbc.mint, fee_account)

    for meter_id in ("pv-roof", "pv-barn"):
        owner = Keypair()
        await chain.fund(owner.pubkey(), 10**9)
        world.meters[meter_id] = (owner, await register_active_meter(chain, grid, admin, owner, meter_id,
                                                                     bytes(GATEWAY_KEY.verify_key)))
    # Baselines (a consumer-heavy history: negative net), then surplus; the barn's gateway is replaced.
    await world.settle("pv-roof", 1, 5_000_000, 2_000_000)
    await world.settle("pv-barn", 1, 1_000, 3_000)
    await world.settle("pv-roof", 2, 5_000_100, 2_006_100)      # +6,000 Wh net → 6 GRID
    await world.settle("pv-roof", 3, 5_009_100, 2_006_200)      # a net consumer hour: mark stays, 0 minted
    await world.settle("pv-roof", 4, 5_009_200, 2_016_300)      # back above the mark: +1,000 Wh
    await world.settle("pv-barn", 2, 1_000, 7_000)              # +4,000 Wh
    barn = world.meters["pv-barn"][1]
    ix = registry.set_meter_key(ids["registry"], admin.pubkey(), barn.address, bytes(NEW_KEY.verify_key))
    (await chain.send_transaction([ix], [admin])).raise_for_failure()
    await world.settle("pv-barn", 1, 1_000, 9_500, key=NEW_KEY)  # seq restarts after a key change: +2,500 Wh

    # THBC: the payment operator issues against two deposits; the consumer redeems part later.
    consumer = Keypair()
    world.consumer = consumer
    await chain.fund(consumer.pubkey(), 10**9)
    consumer_grid = get_associated_token_address(consumer.pubkey(), grid.mint)
    consumer_thbc = get_associated_token_address(consumer.pubkey(), thbc.mint)
    (await chain.send_transaction([
        create_associated_token_account(consumer.pubkey(), consumer.pubkey(), grid.mint),
        create_associated_token_account(consumer.pubkey(), consumer.pubkey(), thbc.mint),
    ], [consumer])).raise_for_failure()
    for reference, amount in (("DEP-0001", 100 * 10**6), ("DEP-0002", 50 * 10**6)):
        ix = payments.issue(ids["payments"], operator.pubkey(), thbc.mint, consumer_thbc, reference, amount)
        result = (await chain.send_transaction([ix], [operator])).raise_for_failure()
        world.payments.append((str(result.signature), "ISSUE", str(consumer.pubkey()), "THBC", amount, reference))

    # Orders: one bought twice (partly, then the rest), one partly bought then cancelled, one left open,
    # one expired.
    roof_owner, roof = world.meters["pv-roof"]
    open_thbc = create_associated_token_account(roof_owner.pubkey(), roof_owner.pubkey(), thbc.mint)
    roof_thbc = get_associated_token_address(roof_owner.pubkey(), thbc.mint)
    now = server.svm.get_clock().unix_timestamp
    creates = [open_thbc]
    for order_id, amount, expires in ((1, 2 * KWH, 3600), (2, 2 * KWH, 3600), (3, KWH, 3600), (4, KWH, 60)):
        creates.append(trading.create_order(ids["trading"], roof_owner.pubkey(), roof.grid_account, grid.mint,
                                            order_id, amount, PRICE, now + expires, max_fee_bps=FEE_BPS))
        world.orders[f"order-{order_id}"] = trading.order_address(ids["trading"], roof_owner.pubkey(), order_id)[0]
    (await chain.send_transaction(creates, [roof_owner])).raise_for_failure()

    def buy(order_id: int, amount: int) -> Instruction:
        return trading.buy(ids["trading"], consumer.pubkey(), roof_owner.pubkey(), order_id, amount,
                           buyer_grid=consumer_grid, buyer_thbc=consumer_thbc, seller_thbc=roof_thbc,
                           fee_account=fee_account)

    for order_id, amount in ((1, KWH // 2), (1, 3 * KWH // 2), (2, KWH // 4), (3, KWH // 10)):
        (await chain.send_transaction([buy(order_id, amount)], [consumer])).raise_for_failure()
    ix = trading.cancel_order(ids["trading"], roof_owner.pubkey(), 2, seller_grid=roof.grid_account)
    (await chain.send_transaction([ix], [roof_owner])).raise_for_failure()
    clock = server.svm.get_clock()
    clock.unix_timestamp = now + 120
    server.svm.set_clock(clock)
    ix = trading.expire_order(ids["trading"], roof_owner.pubkey(), 4, seller_grid=roof.grid_account)
    (await chain.send_transaction([ix], [admin])).raise_for_failure()

    # The consumer uses some energy (GRID burned) and redeems some THBC.
    ix = energy.consume(ids["energy_token"], consumer.pubkey(), grid.mint, KWH // 4)
    result = (await chain.send_transaction([ix], [consumer])).raise_for_failure()
    world.payments.append((str(result.signature), "CONSUME", str(consumer.pubkey()), "GRID", KWH // 4, None))
    ix = payments.redeem(ids["payments"], consumer.pubkey(), thbc.mint, 20 * 10**6, "PAYOUT-0001")
    result = (await chain.send_transaction([ix], [consumer])).raise_for_failure()
    world.payments.append((str(result.signature), "REDEEM", str(consumer.pubkey()), "THBC", 20 * 10**6,
                           "PAYOUT-0001"))

    # Certificates: the roof certifies 4,000 Wh then 2,000 Wh more; governance validates the first, which its
    # holder retires.
    for index, to_wh in ((0, 4_000), (1, 6_000)):
        ix = certificates.issue(ids["certificates"], roof_owner.pubkey(), roof.address, index, to_wh)
        (await chain.send_transaction([ix], [roof_owner])).raise_for_failure()
    first = certificates.certificate_address(ids["certificates"], roof.address, 0)[0]
    (await chain.send_transaction([certificates.validate(ids["certificates"], admin.pubkey(), first)],
                                  [admin])).raise_for_failure()
    (await chain.send_transaction([certificates.retire(ids["certificates"], roof_owner.pubkey(), first)],
                                  [roof_owner])).raise_for_failure()
    return world
