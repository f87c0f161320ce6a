"""The backend's database against the chain (only when the auditor is given it): the backend may hold more
than the chain, never other bytes than the chain settled.

- readings (``--readings``): every reading settled on chain is stored, the same 60 bytes and the same
  signature the Ed25519 precompile checked;
- payments, D7 (``--database``): per transaction and kind, the amounts the chain's PaymentIssued, Redeemed and
  GridConsumed events moved; and THBC supply = D7's issued - redeemed.
"""

from __future__ import annotations

from collections import defaultdict

from audit.database import payment_rows, stored_readings
from audit.formats import reading_field_differences
from audit.ledger import Ledger

__all__ = ["check_payments", "check_readings"]


def check_payments(ledger: Ledger, url: str) -> None:
    add = ledger.add
    rows = payment_rows(url)
    chain: defaultdict[tuple[str, str], int] = defaultdict(int)
    for signature, kind, amount in ledger.payments:
        chain[(signature, kind)] += amount
    stored: defaultdict[tuple[str, str], int] = defaultdict(int)
    for row in rows:
        stored[(row.signature, row.kind)] += row.amount
    for key in sorted(set(chain) | set(stored)):
        if chain.get(key, 0) != stored.get(key, 0):
            add("d7", f"{key[1]}: the chain moved {chain.get(key, 0)} base units, D7 records {stored.get(key, 0)}",
                signature=key[0])
    issued = sum(r.amount for r in rows if r.asset == "THBC" and r.kind == "ISSUE")
    redeemed = sum(r.amount for r in rows if r.asset == "THBC" and r.kind == "REDEEM")
    supply = ledger.report.figures.get("thbc_supply")
    if supply is not None and supply != issued - redeemed:
        add("d7", f"THBC supply {supply}, but D7 says issued {issued} - redeemed {redeemed} = {issued - redeemed}",
            account=ledger.thbc_mint)
    ledger.report.figures.update(d7_rows=len(rows))


def check_readings(ledger: Ledger, url: str) -> None:
    add = ledger.add
    stored = stored_readings(url, [(s.meter_id, s.seq) for s in ledger.settled])
    missing = 0
    for s in ledger.settled:
        rows = stored.get((s.meter_id, s.seq), [])
        what = f"settled reading of meter {s.meter_id} seq {s.seq}"
        if any(r.data == s.data and r.signature == s.signature for r in rows):
            continue
        missing += 1
        if not rows:
            add("readings", f"{what} is not among the backend's stored readings", signature=s.transaction)
        elif not any(r.data == s.data for r in rows):
            fields = ", ".join(reading_field_differences(s.data, rows[0].data))
            add("readings", f"{what}: the stored copy differs from the signed bytes settled on chain in {fields}",
                signature=s.transaction)
        else:
            add("readings", f"{what}: the stored signature differs from the one verified on chain",
                signature=s.transaction)
    ledger.report.figures.update(readings_checked=len(ledger.settled), readings_missing=missing)
