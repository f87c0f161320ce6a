"""The demo's chain step over a small backend database of genuinely signed, ingested readings."""

from __future__ import annotations

from pathlib import Path

import pytest
from nacl.signing import SigningKey

from backend.ingest.pipeline import Ingest
from backend.storage import open_storage
from demo.chain import PRICE, Balances, settle_and_trade
from gridtokenx.batch import AckStatus, encode_batch
from gridtokenx.reading import Reading, sign
from programs.trading import client as trading

pytestmark = pytest.mark.chain

GW = "gw-demo"
KEY = SigningKey(b"\x33" * 32)
T0 = 1_764_072_000_000
WH = 10**6


async def _database(tmp_path: Path, readings: list[Reading]) -> str:
    url = f"sqlite:///{tmp_path}/backend.db"
    async with await open_storage(url) as storage:
        await storage.add_gateway(GW, bytes(KEY.verify_key))
        ingest = Ingest(storage)
        ack = await ingest.handle(GW, encode_batch(GW, "b1", 1, [(r, sign(r, KEY)) for r in readings]))
        ingest.close()
    assert ack is not None and {r.status for r in ack.results} == {AckStatus.STORED}
    return url


def _series(meter: str, n: int, import_step: int, export_step: int, *,
            start: tuple[int, int] = (0, 0)) -> list[Reading]:
    return [Reading(meter, s, T0 + s * 1_000, start[0] + import_step * s, start[1] + export_step * s, power_w=-100)
            for s in range(1, n + 1)]


async def test_surplus_is_minted_sold_and_every_balance_adds_up(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Real meters arrive with years on their counters. Each meter's first reading becomes its baseline on
    # chain (never credited); GRID is minted for the surplus between the first and the latest reading.
    readings = [
        *_series("house-main", 6, 30, 10, start=(2_000, 100)),  # imports more than it exports
        *_series("pv-inverter", 6, 2, 842, start=(1_200_000, 9_800_000)),  # 8.6 MWh lifetime net export
        *_series("flat-1", 4, 2, 120, start=(35_000, 3_000)),  # a consumer-heavy past, a surplus now
        Reading("flat-1", 5, T0 + 5_000, 35_010, 12_999, meter_error=True),  # never credited
    ]
    url = await _database(tmp_path, readings)
    result = await settle_and_trade(url, GW, bytes(KEY.verify_key), ["house-main", "pv-inverter", "flat-1", "flat-2"])

    # Surplus between the first and the latest reading: 5 x (842 - 2) Wh and 3 x (120 - 2) Wh.
    assert result.minted == {"house-main": 0, "pv-inverter": 4_200 * WH, "flat-1": 354 * WH}
    assert result.settled_seq == {"house-main": 6, "pv-inverter": 6, "flat-1": 4}
    assert result.seller_meter == "pv-inverter" and result.offered == 2_100 * WH
    amount = 2_100 * WH // 2
    cost = -(-amount * PRICE // 10**9)  # rounded up for the seller
    fee = -(-cost * 25 // 10_000)  # rounded up: no fill with a cost is fee-free
    assert result.trade is not None
    assert (result.trade.amount, result.trade.price, result.trade.cost, result.trade.fee) == (amount, PRICE, cost, fee)
    assert (cost, fee) == (3_675_000, 9_188)  # 1.05 kWh at 3.50 THBC = 3.675 THBC, 0.25 % of it, rounded up
    assert result.balances == Balances(
        seller_grid=4_200 * WH - 2_100 * WH,
        seller_thbc=cost - fee,
        consumer_grid=amount,
        consumer_thbc=1_000 * 10**6 - cost,
        fee_thbc=fee,
        escrow_grid=2_100 * WH - amount,
    )
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines and all(line.startswith("  chain: ") for line in lines), out
    # The demo prints each meter's lifetime net (export - import) of the latest reading, and what was minted.
    assert "pv-inverter  seq 6 settled: export - import +8605040 Wh → 4.200 kWh GRID minted\n" in out
    assert "flat-1       seq 4 settled: export - import -31528 Wh → 0.354 kWh GRID minted (1 newer readings" in out
    assert "house-main   seq 6 settled: export - import -2020 Wh → 0.000 kWh GRID minted" in out
    assert "flat-2       no good reading to settle" in out
    assert "TradeExecuted: 1.050 kWh for 3.675000 THBC (fee 0.009188 THBC)" in out
    assert result.fill is not None and result.fill.remaining == 2_100 * WH - amount
    assert result.trade.timestamp > 1_700_000_000
    assert trading.trade_cost(amount, PRICE) == cost


async def test_without_surplus_nothing_is_offered(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = await _database(tmp_path, _series("flat-2", 3, 50, 5))
    result = await settle_and_trade(url, GW, bytes(KEY.verify_key), ["flat-2"])
    assert result.minted == {"flat-2": 0} and result.settled_seq == {"flat-2": 3}
    assert (result.seller_meter, result.trade, result.balances) == (None, None, None)
    assert "no GRID to sell" in capsys.readouterr().out
