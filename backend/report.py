"""The grid operator's report over a period: energy, GRID, trades, certificates, rejected readings.

    gridtokenx backend report --from 2025-12-01 --to 2026-01-01 [--format text|csv|json] [--meter ID]

Per meter: energy imported and exported in the period, from the signed readings (the counter at the end of
the period minus the counter at its start: the last good reading before ``from``, or the first in the
period); readings received; GRID minted by settlements executed in the period (``minted`` events, by block
time); certificates issued (Wh) and retired in the period; readings refused at ingest, by reason; mints
that failed, by reason. Per wallet: GRID sold and bought, THBC received (after fees) and paid, fees.
In total: the sums, THBC issued and redeemed and GRID consumed (D7).

Every chain figure comes from what the indexer recorded of the chain's events, so it reconciles with the
chain (tests/backend/test_report.py recomputes them from the chain's transactions). Energy counters come
from readings, whose signatures anyone can check (`gridtokenx verify`).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from backend.storage import Sql
from backend.storage.certificates import certificate_totals
from backend.storage.payments import payment_totals
from backend.storage.trades import trade_totals
from gridtokenx.reading import Flags

__all__ = ["MeterFigures", "Report", "WalletFigures", "build_report", "parse_when", "render"]

_KWH = 10**9
_WH = 10**6
_THBC = 10**6


def parse_when(text: str) -> datetime:
    """``2025-12-01`` (midnight UTC) or an ISO 8601 time (UTC unless it names a zone)."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD) or an ISO 8601 time") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


@dataclass
class MeterFigures:
    meter_id: str
    readings: int = 0
    import_wh: int = 0
    export_wh: int = 0
    minted_base_units: int = 0
    settlements: int = 0
    certificates_issued: int = 0
    certified_wh: int = 0
    certificates_retired: int = 0
    retired_wh: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    mint_failures: dict[str, int] = field(default_factory=dict)


@dataclass
class WalletFigures:
    wallet: str
    sold_base_units: int = 0
    bought_base_units: int = 0
    received_thbc: int = 0
    paid_thbc: int = 0
    fees_thbc: int = 0
    trades: int = 0


@dataclass
class Report:
    start: str
    end: str
    meters: list[MeterFigures]
    wallets: list[WalletFigures]
    totals: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"from": self.start, "to": self.end, "meters": [asdict(m) for m in self.meters],
                "wallets": [asdict(w) for w in self.wallets], "totals": self.totals}


async def _energy(db: Sql, start_ms: int, end_ms: int, meter: str | None) -> dict[str, tuple[int, int, int]]:
    """meter → (readings in the period, import Wh, export Wh) from good readings' counters."""
    out: dict[str, tuple[int, int, int]] = {}
    rows = await db.fetch(
        "SELECT gateway_id, meter_id, seq, timestamp_ms, import_wh, export_wh, flags FROM readings "
        "WHERE timestamp_ms < $1 AND (CAST($2 AS TEXT) IS NULL OR meter_id = $2) ORDER BY gateway_id, meter_id, seq",
        end_ms, meter,
    )
    series: dict[tuple[str, str], list[tuple[int, int, int, int]]] = {}
    for gw, m, _seq, ts, imp, exp, flags in rows:
        series.setdefault((gw, m), []).append((int(ts), int(imp), int(exp), int(flags)))
    for (_gw, m), points in series.items():
        good = [p for p in points if not p[3] & int(Flags.METER_ERROR)]
        inside = [p for p in points if p[0] >= start_ms]
        before = [p for p in good if p[0] < start_ms]
        within = [p for p in good if p[0] >= start_ms]
        count, imp, exp = out.get(m, (0, 0, 0))
        count += len(inside)
        if within:
            first = before[-1] if before else within[0]
            last = within[-1]
            imp += max(last[1] - first[1], 0)
            exp += max(last[2] - first[2], 0)
        out[m] = (count, imp, exp)
    return out


async def build_report(db: Sql, start: datetime, end: datetime, *, meter: str | None = None) -> Report:
    start_s, end_s = int(start.timestamp()), int(end.timestamp())
    start_ms, end_ms = start_s * 1000, end_s * 1000
    meters: dict[str, MeterFigures] = {}

    def m(meter_id: str) -> MeterFigures:
        return meters.setdefault(meter_id, MeterFigures(meter_id))

    for meter_id, (count, imp, exp) in (await _energy(db, start_ms, end_ms, meter)).items():
        f = m(meter_id)
        f.readings, f.import_wh, f.export_wh = count, imp, exp
    for meter_id, kind, payload in await db.fetch(
        "SELECT meter_id, kind, payload FROM chain_events WHERE kind IN ('minted', 'baseline_recorded') "
        "AND block_time >= $1 AND block_time < $2 AND (CAST($3 AS TEXT) IS NULL OR meter_id = $3)",
        start_s, end_s, meter,
    ):
        f = m(meter_id)
        f.settlements += 1  # a baseline is a settlement that mints nothing
        if kind == "minted":
            f.minted_base_units += int(json.loads(payload)["amount"])
    for meter_id, t in (await certificate_totals(db, since=start_s, until=end_s)).items():
        if meter is not None and meter_id != meter:
            continue
        if any(t.values()):
            f = m(meter_id)
            f.certificates_issued, f.certified_wh = t["issued"], t["issued_wh"]
            f.certificates_retired, f.retired_wh = t["retired"], t["retired_wh"]
    for meter_id, reason, n in await db.fetch(
        "SELECT COALESCE(meter_id, '(no meter)'), reason, count(*) FROM quarantine WHERE received_ms >= $1 "
        "AND received_ms < $2 AND (CAST($3 AS TEXT) IS NULL OR meter_id = $3) GROUP BY 1, 2",
        start_ms, end_ms, meter,
    ):
        m(meter_id).rejected[reason] = int(n)
    for meter_id, reason, n in await db.fetch(
        "SELECT meter_id, reason, count(*) FROM reading_states WHERE state = 'FAILED' AND updated_ms >= $1 "
        "AND updated_ms < $2 AND (CAST($3 AS TEXT) IS NULL OR meter_id = $3) GROUP BY 1, 2",
        start_ms, end_ms, meter,
    ):
        m(meter_id).mint_failures[reason or "unknown"] = int(n)

    wallets = []
    if meter is None:
        for wallet, t in sorted((await trade_totals(db, since=start_s, until=end_s)).items()):
            wallets.append(WalletFigures(wallet, t["sold"], t["bought"], t["received"], t["paid"], t["fee"],
                                         t["trades"]))
    trade_rows = await db.fetch(
        "SELECT count(*), COALESCE(sum(amount), 0), COALESCE(sum(cost), 0), COALESCE(sum(fee), 0) FROM trades "
        "WHERE executed_at >= $1 AND executed_at < $2", start_s, end_s)
    trades_n, traded, cost, fees = (int(x) for x in trade_rows[0])
    pay = await payment_totals(db, since=start_s, until=end_s)
    ordered = sorted(meters.values(), key=lambda f: f.meter_id)
    rejected: dict[str, int] = {}
    for f in ordered:
        for reason, n in f.rejected.items():
            rejected[reason] = rejected.get(reason, 0) + n
    totals: dict[str, Any] = {
        "meters": len(ordered),
        "readings": sum(f.readings for f in ordered),
        "import_wh": sum(f.import_wh for f in ordered),
        "export_wh": sum(f.export_wh for f in ordered),
        "minted_base_units": sum(f.minted_base_units for f in ordered),
        "settlements": sum(f.settlements for f in ordered),
        "certificates_issued": sum(f.certificates_issued for f in ordered),
        "certified_wh": sum(f.certified_wh for f in ordered),
        "certificates_retired": sum(f.certificates_retired for f in ordered),
        "retired_wh": sum(f.retired_wh for f in ordered),
        "rejected": rejected,
        "trades": trades_n if meter is None else None,
        "traded_base_units": traded if meter is None else None,
        "traded_thbc": cost if meter is None else None,
        "fees_thbc": fees if meter is None else None,
        "thbc_issued": pay["ISSUE"] if meter is None else None,
        "thbc_redeemed": pay["REDEEM"] if meter is None else None,
        "grid_consumed_base_units": pay["CONSUME"] if meter is None else None,
    }
    return Report(start.isoformat(), end.isoformat(), ordered, wallets, totals)


def render(report: Report, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report.to_json(), indent=2)
    if fmt == "csv":
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(["row", "id", "readings", "import_kwh", "export_kwh", "grid_minted", "settlements",
                    "certificates_issued", "certified_kwh", "certificates_retired", "retired_kwh", "rejected",
                    "mint_failures", "grid_sold", "grid_bought", "thbc_received", "thbc_paid", "thbc_fees",
                    "trades"])
        for f in report.meters:
            w.writerow(["meter", f.meter_id, f.readings, f.import_wh / 1000, f.export_wh / 1000,
                        f.minted_base_units / _KWH, f.settlements, f.certificates_issued, f.certified_wh / 1000,
                        f.certificates_retired, f.retired_wh / 1000, _pairs(f.rejected), _pairs(f.mint_failures),
                        "", "", "", "", "", ""])
        for wf in report.wallets:
            w.writerow(["wallet", wf.wallet, "", "", "", "", "", "", "", "", "", "", "", wf.sold_base_units / _KWH,
                        wf.bought_base_units / _KWH, wf.received_thbc / _THBC, wf.paid_thbc / _THBC,
                        wf.fees_thbc / _THBC, wf.trades])
        t = report.totals
        w.writerow(["total", "", t["readings"], t["import_wh"] / 1000, t["export_wh"] / 1000,
                    t["minted_base_units"] / _KWH, t["settlements"], t["certificates_issued"],
                    t["certified_wh"] / 1000, t["certificates_retired"], t["retired_wh"] / 1000,
                    _pairs(t["rejected"]), "", _div(t["traded_base_units"], _KWH), _div(t["traded_base_units"], _KWH),
                    _div((t["traded_thbc"] or 0) - (t["fees_thbc"] or 0), _THBC), _div(t["traded_thbc"], _THBC),
                    _div(t["fees_thbc"], _THBC), t["trades"] if t["trades"] is not None else ""])
        return out.getvalue()
    lines = [f"GridTokenX report {report.start} → {report.end}", ""]
    lines.append(f"{'meter':<18}{'readings':>9}{'import kWh':>12}{'export kWh':>12}{'GRID minted':>13}"
                 f"{'certified kWh':>15}{'retired kWh':>13}  rejected")
    for f in report.meters:
        lines.append(f"{f.meter_id:<18}{f.readings:>9}{f.import_wh / 1000:>12.3f}{f.export_wh / 1000:>12.3f}"
                     f"{f.minted_base_units / _KWH:>13.3f}{f.certified_wh / 1000:>15.3f}{f.retired_wh / 1000:>13.3f}"
                     f"  {_pairs(f.rejected) or '-'}")
    if report.wallets:
        lines += ["", f"{'wallet':<46}{'sold kWh':>10}{'bought kWh':>12}{'THBC in':>12}{'THBC out':>12}{'trades':>8}"]
        for wf in report.wallets:
            lines.append(f"{wf.wallet:<46}{wf.sold_base_units / _KWH:>10.3f}{wf.bought_base_units / _KWH:>12.3f}"
                         f"{wf.received_thbc / _THBC:>12.2f}{wf.paid_thbc / _THBC:>12.2f}{wf.trades:>8}")
    t = report.totals
    lines += ["", "total: " + ", ".join(
        f"{k} {v}" for k, v in t.items() if v is not None and not (isinstance(v, dict) and not v))]
    return "\n".join(lines)


def _pairs(d: dict[str, int]) -> str:
    return ";".join(f"{k}={v}" for k, v in sorted(d.items()))


def _div(value: int | None, unit: int) -> float | str:
    return "" if value is None else value / unit
