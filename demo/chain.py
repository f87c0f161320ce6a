"""The chain step of ``gridtokenx demo``: settle what the backend holds, then trade the surplus.

On an embedded LiteSVM chain (backend.chain.embedded): every demo meter is registered to its own prosumer
with the gateway's public key as the meter key (the gateway signs for all its meters); the backend's
minting worker settles each meter from the backend database — its earliest good reading as the baseline
(energy from before registration is never credited), then its latest, minting GRID for the net export in
between; the owner of the meter with the most surplus offers half of its GRID at 3.5 THBC/kWh for an
hour; a consumer, funded with THBC by the payment gateway (the payments program's Issue against a deposit
reference), buys half of that offer. The Buy's events
(OrderFilled, TradeExecuted) are decoded and every balance is checked against what they say moved.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from solders.keypair import Keypair
from solders.pubkey import Pubkey
from spl.token.instructions import create_associated_token_account, get_associated_token_address

from backend.chain.embedded import EmbeddedDeployment, embedded_deployment
from backend.minting import MintingSummary, MintingWorker
from backend.storage import open_storage
from programs.client.chain import Chain, LiteSVMChain
from programs.energy_token.bootstrap import RegisteredMeter, register_active_meter
from programs.payments import client as payments
from programs.trading import client as trading
from programs.trading.sandbox import token_amount

__all__ = ["PRICE", "Balances", "ChainDemoError", "ChainDemoResult", "settle_and_trade"]

PRICE = 3_500_000  # THBC base units per kWh: 3.50 THBC
ORDER_SECONDS = 3600
CONSUMER_THBC = 1_000 * 10**6  # what the payment gateway issues to the consumer: 1,000 THBC
LAMPORTS = 10**9
_KWH = trading.GRID_PER_KWH
_THBC = 10**6


class ChainDemoError(Exception):
    """A balance after the trade is not what the trade event says it should be."""


@dataclass(frozen=True)
class Balances:
    """Token balances after the trade, in base units (GRID 10**9 per kWh, THBC 10**6 per baht)."""

    seller_grid: int
    seller_thbc: int
    consumer_grid: int
    consumer_thbc: int
    fee_thbc: int
    escrow_grid: int  # GRID still offered in the order's vault


@dataclass(frozen=True)
class ChainDemoResult:
    minted: dict[str, int]  # meter id → GRID base units minted
    settled_seq: dict[str, int]  # meter id → the sequence number settled
    seller_meter: str | None  # None: no meter had surplus to sell
    offered: int  # GRID base units put up for sale
    trade: trading.TradeExecuted | None
    fill: trading.OrderFilled | None  # the order's side of the same Buy: what remains on offer
    balances: Balances | None


def _say(line: str) -> None:
    print(f"  chain: {line}", flush=True)


def _kwh(base_units: int) -> str:
    return f"{base_units / _KWH:.3f} kWh"


def _thbc(base_units: int) -> str:
    return f"{base_units / _THBC:.6f} THBC"


async def _funded(chain: Chain) -> Keypair:
    key = Keypair()
    await chain.fund(key.pubkey(), LAMPORTS)
    return key


async def settle_and_trade(db_url: str, gateway_id: str, gateway_public_key: bytes,
                           meter_ids: Sequence[str]) -> ChainDemoResult:
    """Run the chain step over the backend database at ``db_url``; print progress, return the figures.
    Raises :class:`ChainDemoError` if a balance disagrees with the trade."""
    chain = LiteSVMChain()
    admin = Keypair()
    deployment = await embedded_deployment(chain, admin)
    _say(f"LiteSVM with registry, energy_token, trading, certificates (fee {deployment.fee_bps} bps)")

    owners: dict[str, tuple[Keypair, RegisteredMeter]] = {}
    for meter_id in meter_ids:
        owner = await _funded(chain)
        owners[meter_id] = (owner, await register_active_meter(chain, deployment.grid, admin, owner, meter_id,
                                                               gateway_public_key))
    _say(f"{len(owners)} meters registered to their prosumers, keyed to gateway {gateway_id}")

    relayer = await _funded(chain)  # the backend's key: pays the fees, proves nothing
    async with await open_storage(db_url) as storage:
        summary = await MintingWorker(storage, chain, deployment.grid, relayer=relayer,
                                      gateways=[gateway_id]).run_once()
    _report_minting(summary, meter_ids)
    minted = {m: s.minted for m, s in summary.settled.items() if m in owners}
    settled_seq = {m: s.seq for m, s in summary.settled.items() if m in owners}

    seller_meter = max(minted, key=lambda m: (minted[m], m), default=None)
    if seller_meter is None or minted[seller_meter] < 2:
        _say("no GRID to sell: GRID is minted only for net generation (export - import) above a meter's "
             "settled mark, which starts at its first settled reading (its baseline)")
        return ChainDemoResult(minted, settled_seq, None, 0, None, None, None)
    seller, meter = owners[seller_meter]
    trade, fill, offered, balances = await _trade(chain, deployment, seller, meter, minted[seller_meter])
    return ChainDemoResult(minted, settled_seq, seller_meter, offered, trade, fill, balances)


def _report_minting(summary: MintingSummary, meter_ids: Sequence[str]) -> None:
    for meter_id, b in sorted(summary.baselines.items()):
        _say(f"{meter_id:<12} seq {b.seq} is its baseline: export - import {b.net_wh:+} Wh, never credited")
    for meter_id, s in sorted(summary.settled.items()):
        flagged = f" ({s.passed_over} newer readings flagged METER_ERROR not credited)" if s.passed_over else ""
        _say(f"{meter_id:<12} seq {s.seq} settled: export - import {s.net_wh:+} Wh → {_kwh(s.minted)} GRID "
             f"minted{flagged}")
    for meter_id, s in sorted(summary.already_settled.items()):
        _say(f"{meter_id:<12} seq {s.seq} already settled ({s.refusal})")
    for meter_id, name in sorted(summary.refused.items()):
        _say(f"{meter_id:<12} refused by the chain: {name}")
    for meter_id, reason in sorted(summary.skipped.items()):
        _say(f"{meter_id:<12} skipped: {reason}")
    seen = {*summary.settled, *summary.already_settled, *summary.refused, *summary.skipped}
    for meter_id in meter_ids:
        if meter_id not in seen:
            _say(f"{meter_id:<12} no good reading to settle")


async def _trade(chain: LiteSVMChain, d: EmbeddedDeployment, seller: Keypair, meter: RegisteredMeter,
                 grid: int) -> tuple[trading.TradeExecuted, trading.OrderFilled, int, Balances]:
    program, grid_mint = d.programs.trading, d.grid.mint
    offered = grid // 2
    now = chain.svm.get_clock().unix_timestamp
    seller_thbc = get_associated_token_address(seller.pubkey(), d.thbc_mint)
    order = trading.create_order(program, seller.pubkey(), meter.grid_account, grid_mint, 1, offered, PRICE,
                                 now + ORDER_SECONDS, max_fee_bps=d.fee_bps)
    open_thbc = create_associated_token_account(seller.pubkey(), seller.pubkey(), d.thbc_mint)
    (await chain.send_transaction([open_thbc, order], [seller])).raise_for_failure()
    _say(f"{meter.meter_id}'s owner offers {_kwh(offered)} at {_thbc(PRICE)}/kWh for {ORDER_SECONDS // 60} min")

    consumer = await _funded(chain)
    consumer_grid = get_associated_token_address(consumer.pubkey(), grid_mint)
    consumer_thbc = get_associated_token_address(consumer.pubkey(), d.thbc_mint)
    (await chain.send_transaction([
        create_associated_token_account(consumer.pubkey(), consumer.pubkey(), grid_mint),
        create_associated_token_account(consumer.pubkey(), consumer.pubkey(), d.thbc_mint),
    ], [consumer])).raise_for_failure()
    deposit = "DEMO-DEPOSIT-0001"  # the bank transfer the payment gateway confirmed
    ix = payments.issue(d.programs.payments, d.payment_gateway.pubkey(), d.thbc_mint, consumer_thbc, deposit,
                        CONSUMER_THBC)
    (await chain.send_transaction([ix], [d.payment_gateway])).raise_for_failure()
    _say(f"payment gateway issues {_thbc(CONSUMER_THBC)} to a consumer against deposit {deposit}")

    amount = offered // 2
    ix = trading.buy(program, consumer.pubkey(), seller.pubkey(), 1, amount, buyer_grid=consumer_grid,
                     buyer_thbc=consumer_thbc, seller_thbc=seller_thbc, fee_account=d.fee_account)
    result = (await chain.send_transaction([ix], [consumer])).raise_for_failure()
    [fill, trade] = trading.decode_events(result, program)
    assert isinstance(fill, trading.OrderFilled) and isinstance(trade, trading.TradeExecuted), (fill, trade)
    _say(f"TradeExecuted: {_kwh(trade.amount)} for {_thbc(trade.cost)} (fee {_thbc(trade.fee)}), "
         f"{_kwh(fill.remaining)} still offered")

    order_key = trading.order_address(program, seller.pubkey(), 1)[0]
    balances = Balances(
        seller_grid=await token_amount(chain, meter.grid_account),
        seller_thbc=await token_amount(chain, seller_thbc),
        consumer_grid=await token_amount(chain, consumer_grid),
        consumer_thbc=await token_amount(chain, consumer_thbc),
        fee_thbc=await token_amount(chain, d.fee_account),
        escrow_grid=await token_amount(chain, trading.vault_address(program, order_key)[0]),
    )
    _check(balances, trade, fill, grid=grid, offered=offered, amount=amount, fee_bps=d.fee_bps,
           seller=seller.pubkey(), buyer=consumer.pubkey())
    _say(f"balances: seller {_kwh(balances.seller_grid)} GRID + {_thbc(balances.seller_thbc)}, consumer "
         f"{_kwh(balances.consumer_grid)} GRID + {_thbc(balances.consumer_thbc)}, fees {_thbc(balances.fee_thbc)}")
    return trade, fill, offered, balances


def _check(b: Balances, t: trading.TradeExecuted, f: trading.OrderFilled, *, grid: int, offered: int, amount: int,
           fee_bps: int, seller: Pubkey, buyer: Pubkey) -> None:
    cost = trading.trade_cost(amount, PRICE)
    fee = trading.trade_fee(cost, fee_bps)
    expected_trade = (seller, buyer, amount, amount, PRICE, cost, fee, offered - amount)
    got_trade = (t.seller, t.buyer, t.amount, t.grid_delivered, t.price, t.cost, t.fee, f.remaining)
    expected = Balances(grid - offered, cost - fee, amount, CONSUMER_THBC - cost, fee, offered - amount)
    if got_trade != expected_trade or b != expected:
        raise ChainDemoError(f"after the trade: expected {expected} and {expected_trade}, "
                             f"chain holds {b} and {got_trade}")
