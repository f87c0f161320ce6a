"""The grid operator's report: every chain figure recomputed from the chain's own transactions and accounts."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import struct
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from backend.chain.embedded import open_embedded_chain
from backend.feed import InProcessFeed
from backend.indexer import Decoder, EmbeddedSource, Indexer
from backend.report import build_report, parse_when, render
from backend.storage import open_storage
from programs.certificates import client as certificates
from programs.energy_token import client as energy
from programs.events import decode_transaction_events
from programs.payments import client as payments
from programs.registry import client as registry
from programs.trading import client as trading
from tests.support.chainworld import GATEWAY_ID, GATEWAY_KEY, reading, token_balance
from tests.support.scenario import run_scenario

pytestmark = pytest.mark.chain


async def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(subprocess.run, cmd, capture_output=True, text=True, timeout=60)


async def test_report_figures_reconcile_with_the_chain(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/backend.db"
    embedded = await open_embedded_chain(tmp_path / "chain")
    try:
        async with await open_storage(url) as storage:
            await storage.add_gateway(GATEWAY_ID, bytes(GATEWAY_KEY.verify_key))
            s = await run_scenario(embedded.chain, embedded, storage)
            # A reading signed by someone else: quarantined at ingest, reported as rejected.
            forged = SigningKey(b"\x42" * 32)
            from backend.ingest.pipeline import Ingest
            from gridtokenx.batch import encode_batch
            from gridtokenx.reading import sign

            handler = Ingest(storage)
            bad = reading("pv-idx", 9, 1_000, 99_000)
            await handler.handle(GATEWAY_ID, encode_batch(GATEWAY_ID, "forged", 1, [(bad, sign(bad, forged))]))
            handler.close()
            d = embedded.deployment

            async def read(address: object) -> bytes | None:
                account = await embedded.chain.get_account(address)  # type: ignore[arg-type]
                return None if account is None else bytes(account.data)

            await Indexer(storage, EmbeddedSource(embedded.chain, list(d.programs.values())), Decoder(d, read),
                          d, InProcessFeed()).catch_up()
            now = datetime.now(UTC)
            report = await build_report(storage, now - timedelta(days=400), now + timedelta(days=1))

        # The chain's own record: every transaction of the journal, decoded with the programs' layouts.
        journal = embedded.chain.journal_after(0, 100_000)
        trade_events = []
        settle_minted = consumed = issued = redeemed = 0
        for entry in journal:
            if entry.err is not None:
                continue
            message = entry.transaction.message
            found = decode_transaction_events(entry.logs, d.by_name(), instruction_programs=[
                message.account_keys[ix.program_id_index] for ix in message.instructions]).complete()
            trade_events += [e.event for e in found if isinstance(e.event, trading.TradeExecuted)]
            settle_minted += sum(e.event.amount for e in found if isinstance(e.event, energy.GridMinted))
            consumed += sum(e.event.amount for e in found if isinstance(e.event, energy.GridConsumed))
            issued += sum(e.event.amount for e in found if isinstance(e.event, payments.PaymentIssued))
            redeemed += sum(e.event.amount for e in found if isinstance(e.event, payments.Redeemed))
        mint = await embedded.chain.get_account(d.grid_mint)
        assert mint is not None
        supply = struct.unpack_from("<Q", bytes(mint.data), 36)[0]
        meter = await registry.fetch_meter(embedded.chain, d.registry, "pv-idx")
        assert meter is not None

        t = report.totals
        assert t["minted_base_units"] == settle_minted == meter.generation_since_baseline_wh * 10**6
        # GRID ends "burned or retired": what is in circulation is what was minted less what was consumed.
        assert t["grid_consumed_base_units"] == consumed > 0
        assert supply == t["minted_base_units"] - t["grid_consumed_base_units"]
        assert t["thbc_issued"] == issued and t["thbc_redeemed"] == redeemed > 0
        thbc = await embedded.chain.get_account(d.thbc_mint)
        assert thbc is not None and struct.unpack_from("<Q", bytes(thbc.data), 36)[0] == issued - redeemed
        assert t["settlements"] == 2  # the baseline (BaselineRecorded) and the reading that minted (GridMinted)
        assert t["trades"] == len(trade_events) == 2
        assert t["traded_base_units"] == sum(e.amount for e in trade_events)
        assert t["traded_thbc"] == sum(e.cost for e in trade_events)
        assert t["fees_thbc"] == sum(e.fee for e in trade_events) == await token_balance(embedded.chain,
                                                                                          d.fee_account)
        cert = certificates.Certificate.decode(bytes((await embedded.chain.get_account(s.certificate)).data))  # type: ignore[union-attr]
        assert (t["certificates_issued"], t["certified_wh"]) == (1, cert.to_wh - cert.from_wh)
        assert (t["certificates_retired"], t["retired_wh"]) == (1, cert.to_wh - cert.from_wh)
        assert t["rejected"] == {"bad_signature": 1}
        [pv] = report.meters
        # From the signed readings: export 5,000 → 13,000 Wh, import flat.
        assert (pv.meter_id, pv.readings, pv.import_wh, pv.export_wh) == ("pv-idx", 3, 0, 8_000)
        assert pv.rejected == {"bad_signature": 1}
        by_wallet = {w.wallet: w for w in report.wallets}
        seller, buyer = by_wallet[str(s.seller.address)], by_wallet[str(s.buyer.address)]
        assert seller.received_thbc == await token_balance(embedded.chain, s.seller.thbc)  # it started with none
        # The buyer: 100 THBC issued, paid for its trades, redeemed some; bought GRID, consumed some.
        assert buyer.paid_thbc == 100 * 10**6 - redeemed - await token_balance(embedded.chain, s.buyer.thbc)
        assert buyer.bought_base_units == consumed + await token_balance(embedded.chain, s.buyer.grid)

        # The same report through the command line, as CSV and JSON.
        day = now.date()
        cmd = [sys.executable, "-m", "gridtokenx", "backend", "report", "--database", url, "--from",
               str(day - timedelta(days=400)), "--to", str(day + timedelta(days=2))]
        as_json = await _run([*cmd, "--format", "json"])
        assert as_json.returncode == 0, as_json.stderr
        assert json.loads(as_json.stdout)["totals"]["minted_base_units"] == settle_minted
        as_csv = await _run([*cmd, "--format", "csv", "--meter", "pv-idx"])
        assert as_csv.returncode == 0, as_csv.stderr
        rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
        assert [(r["row"], r["id"], float(r["grid_minted"]), float(r["export_kwh"])) for r in rows] == [
            ("meter", "pv-idx", settle_minted / 10**9, 8.0), ("total", "", settle_minted / 10**9, 8.0)]
        assert "pv-idx" in render(report, "text")
        bad_dates = await _run([*cmd[:-4], "--from", "yesterday", "--to", "2026-01-01"])
        assert bad_dates.returncode == 2 and "is not a date" in bad_dates.stderr
    finally:
        embedded.chain.close()


def test_dates_are_utc_unless_they_say_otherwise() -> None:
    assert parse_when("2025-12-01") == datetime(2025, 12, 1, tzinfo=UTC)
    assert parse_when("2025-12-01T07:00:00+07:00") == datetime(2025, 12, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="not a date"):
        parse_when("1/12/2025")
