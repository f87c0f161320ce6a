"""Replaying the history: each transaction of our programs, oldest first, judged as it happened.

The registry's events (MeterRegistered, MeterStatusChanged, MeterKeyChanged, MeterReassigned) give the key,
owner and status each meter had at each moment. Every SettleAndMint instruction is then checked against
them: the 60 signed bytes decode (docs/reading-format.md); an Ed25519 precompile entry in the same
transaction covers exactly those bytes with the meter's key of that moment, and the signature verifies
here (PyNaCl), not on the precompile's word; the reading is newer than the meter's last one with its
counters not going backwards (a key change clears only the sequence / timestamp history); the GRID due is
recomputed — nothing for the baseline, ``max(0, net - mark) * 10**6`` base units afterwards, the mark
``max(mark, net)`` — and compared with the BaselineRecorded / GridMinted and SettlementRecorded events.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from solders.pubkey import Pubkey

from audit.deployment import Programs
from audit.formats import (
    BASE_UNITS_PER_WH,
    ED25519_PROGRAM_ID,
    Event,
    FormatError,
    Reading,
    canonical,
    decode_reading,
    ed25519_entries,
    meter_id_seed,
)
from audit.logs import events_from_logs
from audit.report import Report
from audit.source import ChainSource, ChainTransaction, SignatureInfo

__all__ = ["Ledger", "MeterReplay", "OrderReplay", "Settled"]

IX_SETTLE_AND_MINT = 1
METER_ACTIVE = 1


@dataclass
class MeterReplay:
    meter_id: str
    address: Pubkey
    owner: Pubkey
    key: bytes
    status: int = 0
    count: int = 0
    mark: int = 0
    baseline: int = 0
    last_seq: int | None = None  # None: no reading since registration or the last key change
    last_ts: int | None = None
    last_import: int = 0
    last_export: int = 0
    minted: int = 0  # base units, recomputed


@dataclass(frozen=True)
class Settled:
    meter_id: str
    seq: int
    data: bytes
    signature: bytes  # the Ed25519 signature the transaction carried
    transaction: str


@dataclass
class OrderReplay:
    remaining: int
    state: int
    created_by: str


class Ledger:
    """The replay of our programs' history: the registry as it stood at each moment, every settlement
    judged against it, orders, certificates and payments as their events say. ``add`` records a discrepancy."""

    def __init__(self, source: ChainSource, programs: Programs, report: Report) -> None:
        self.source = source
        self.programs = programs
        self.report = report
        self.add = report.add
        self.registry: Pubkey | None = programs.registry
        self.grid_mint: Pubkey | None = None
        self.thbc_mint: Pubkey | None = None
        self.meters: dict[str, MeterReplay] = {}
        self.settled: list[Settled] = []
        self.grid_events_total = 0
        self.grid_recomputed = 0
        self.grid_consumed = 0
        self.baselines = 0
        self.orders: dict[Pubkey, OrderReplay] = {}
        self.issued_certificates: dict[Pubkey, tuple[Pubkey, int, int, int, str]] = {}
        self.thbc_issued = 0
        self.thbc_redeemed = 0
        self.payments: list[tuple[str, str, int]] = []  # (signature, ISSUE/REDEEM/CONSUME, amount)

    def replay(self, signatures: list[SignatureInfo]) -> None:
        programs = self.programs.by_id()
        if self.registry is not None:
            programs[self.registry] = "registry"
        for info in signatures:
            tx = self.source.transaction(info.signature)
            if tx is None:
                self.add("events", "the chain lists this transaction but does not return it", signature=info.signature)
                continue
            if tx.failed:
                continue
            logged = events_from_logs(tx.logs, programs, [ix.program for ix in tx.instructions])
            for error in logged.errors:
                self.add("events", f"bytes one of our programs logged are no documented event: {error}",
                         signature=tx.signature)
            if logged.truncated:
                self.add("events", "the transaction's logs are truncated: some of its events are missing",
                         signature=tx.signature)
            by_ix: defaultdict[int, list[tuple[int, Event]]] = defaultdict(list)
            for e in logged.events:
                by_ix[e.instruction].append((e.depth, e.event))
            datas = [ix.data for ix in tx.instructions]
            for index, ix in enumerate(tx.instructions):
                events = by_ix.get(index, [])
                if ix.program == self.programs.energy_token and ix.data[:1] == bytes([IX_SETTLE_AND_MINT]):
                    self.settlement(tx, index, datas, events)
                    events = [(d, e) for d, e in events if e.name not in _SETTLEMENT_EVENTS]
                for depth, event in events:
                    self.apply(tx, event, depth)

    def apply(self, tx: ChainTransaction, e: Event, depth: int) -> None:
        handler = _HANDLERS.get(e.name)
        if handler is not None:
            handler(self, tx, e)
        elif e.name in _SETTLEMENT_EVENTS:
            self.add("settlement", f"{e.name} logged outside a SettleAndMint instruction", signature=tx.signature)

    # registry
    def _meter_registered(self, tx: ChainTransaction, e: Event) -> None:
        self._canonical_meter(tx, e["meter"], e["meter_id"])
        known = self.meters.get(e["meter_id"])
        if known is not None and known.address != e["meter"]:
            self.add("meter-account", f"meter id {e['meter_id']} registered a second time, at {e['meter']} "
                                      f"(first at {known.address})", signature=tx.signature, account=e["meter"])
        self.meters[e["meter_id"]] = MeterReplay(e["meter_id"], e["meter"], e["owner"], bytes(e["meter_key"]))

    def _meter_event(self, tx: ChainTransaction, e: Event) -> MeterReplay | None:
        meter = self.meters.get(e["meter_id"])
        if meter is None:
            self.add("meter-account", f"{e.name} for meter {e['meter_id']}, never registered",
                     signature=tx.signature, account=e["meter"])
        return meter

    def _status_changed(self, tx: ChainTransaction, e: Event) -> None:
        if (meter := self._meter_event(tx, e)) is not None:
            meter.status = e["status"]

    def _key_changed(self, tx: ChainTransaction, e: Event) -> None:
        if (meter := self._meter_event(tx, e)) is not None:
            meter.key = bytes(e["meter_key"])
            meter.last_seq = meter.last_ts = None  # SetMeterKey clears the sequence / timestamp history

    def _reassigned(self, tx: ChainTransaction, e: Event) -> None:
        if (meter := self._meter_event(tx, e)) is not None:
            meter.owner, meter.key, meter.status = e["owner"], bytes(e["meter_key"]), e["status"]

    def _canonical_meter(self, tx: ChainTransaction, address: Pubkey, meter_id: str) -> bool:
        assert self.registry is not None
        expected = canonical([b"meter", meter_id_seed(meter_id)], self.registry)[0]
        if address != expected:
            self.add("meter-account", f"meter {meter_id} used at {address}, not its canonical address {expected}",
                     signature=tx.signature, account=address)
            return False
        return True

    # energy token
    def _consumed(self, tx: ChainTransaction, e: Event) -> None:
        self.grid_consumed += e["amount"]
        self.payments.append((tx.signature, "CONSUME", e["amount"]))

    def settlement(self, tx: ChainTransaction, index: int, datas: list[bytes],
                   events: list[tuple[int, Event]]) -> None:
        sig = tx.signature
        ix = tx.instructions[index]
        data = ix.data
        if len(data) != 61:
            self.add("settlement", f"SettleAndMint data is {len(data)} bytes, documented 61", signature=sig)
            return
        raw = data[1:61]
        try:
            reading = decode_reading(raw)
        except FormatError as exc:
            self.add("settlement", f"the settled reading is not a valid v1 reading: {exc}", signature=sig)
            return
        what = f"meter {reading.meter_id} seq {reading.seq}"
        account = ix.accounts[1] if len(ix.accounts) > 1 else None
        if account is None or not self._canonical_meter(tx, account, reading.meter_id):
            return
        meter = self.meters.get(reading.meter_id)
        if meter is None:
            self.add("settlement", f"{what} settled, but the registry never registered the meter",
                     signature=sig, account=account)
            return
        signature = self._signature(tx, index, datas, raw, meter, what)
        if reading.meter_error:
            self.add("settlement", f"{what} is flagged METER_ERROR and must never be credited", signature=sig,
                     account=account)
        if meter.status != METER_ACTIVE:
            self.add("settlement", f"{what} settled while the meter's status was {meter.status}, not Active",
                     signature=sig, account=account)
        if meter.last_seq is not None and reading.seq <= meter.last_seq:
            self.add("settlement", f"{what} is not newer than the meter's last settled seq {meter.last_seq} "
                                   f"(a replay)", signature=sig, account=account)
        if meter.last_ts is not None and reading.timestamp_ms <= meter.last_ts:
            self.add("settlement", f"{what}: timestamp {reading.timestamp_ms} not after the last settled "
                                   f"{meter.last_ts}", signature=sig, account=account)
        if meter.count and (reading.import_wh < meter.last_import or reading.export_wh < meter.last_export):
            self.add("settlement", f"{what}: counters went backwards", signature=sig, account=account)
        self._credit(tx, index, meter, reading, events, account)
        if signature is not None:
            self.settled.append(Settled(reading.meter_id, reading.seq, raw, signature, sig))

    def _signature(self, tx: ChainTransaction, index: int, datas: list[bytes], raw: bytes, meter: MeterReplay,
                   what: str) -> bytes | None:
        """The Ed25519 signature the transaction verified over ``raw`` with the meter's key of the moment,
        re-verified here; a discrepancy (and None) otherwise."""
        entries = [e for i, ix in enumerate(tx.instructions) if ix.program == ED25519_PROGRAM_ID
                   for e in ed25519_entries(i, datas) if e.message == raw]
        if not entries:
            self.add("signature", f"{what}: no Ed25519 precompile verification of the reading in the transaction",
                     signature=tx.signature, account=meter.address)
            return None
        by_key = [e for e in entries if e.public_key == meter.key]
        if not by_key:
            self.add("signature", f"{what}: signed by key {entries[0].public_key.hex()}, but the registry held "
                                  f"{meter.key.hex()} for the meter at slot {tx.slot}",
                     signature=tx.signature, account=meter.address)
            return None
        for entry in by_key:
            try:
                VerifyKey(meter.key).verify(raw, entry.signature)
                return entry.signature
            except (BadSignatureError, ValueError):
                continue
        self.add("signature", f"{what}: the Ed25519 signature does not verify over the reading with the meter's "
                              f"key {meter.key.hex()[:16]}…", signature=tx.signature, account=meter.address)
        return None

    def _credit(self, tx: ChainTransaction, index: int, meter: MeterReplay, r: Reading, events: list[tuple[int, Event]],
                account: Pubkey) -> None:
        sig = tx.signature
        what = f"meter {r.meter_id} seq {r.seq}"
        net = r.net_wh
        baseline = meter.count == 0
        previous_mark = meter.mark
        if baseline:
            amount, mark = 0, net
            meter.baseline = net
            self.baselines += 1
        else:
            amount, mark = max(0, net - previous_mark) * BASE_UNITS_PER_WH, max(previous_mark, net)
        meter.count += 1
        meter.mark = mark
        meter.last_seq, meter.last_ts = r.seq, r.timestamp_ms
        meter.last_import, meter.last_export = r.import_wh, r.export_wh
        meter.minted += amount
        self.grid_recomputed += amount
        energy = [e for d, e in events if e.name in ("BaselineRecorded", "GridMinted") and d == 1]
        recorded = [e for d, e in events if e.name == "SettlementRecorded"]
        reading_fields = {"meter": account, "meter_id": r.meter_id, "seq": r.seq, "timestamp_ms": r.timestamp_ms,
                          "import_wh": r.import_wh, "export_wh": r.export_wh}
        if len(energy) != 1:
            self.add("settlement", f"{what}: {len(energy)} BaselineRecorded/GridMinted events, expected one",
                     signature=sig, account=account)
        else:
            e = energy[0]
            self.grid_events_total += e.fields.get("amount", 0)
            expected: dict[str, Any] = dict(reading_fields)
            if baseline:
                expected |= {"baseline_net_generation_wh": net}
                if e.name != "BaselineRecorded":
                    self.add("settlement", f"{what} is the meter's first reading (its baseline, mints nothing), "
                                           f"but the program logged {e.name} of {e.fields.get('amount')}",
                             signature=sig, account=account)
            else:
                expected |= {"previous_mark": previous_mark, "mark": mark, "amount": amount}
                if e.name != "GridMinted":
                    self.add("settlement", f"{what}: expected GridMinted after the baseline, the program logged "
                                           f"{e.name}", signature=sig, account=account)
            self._compare(e, expected, what, sig, account)
        if len(recorded) != 1:
            self.add("settlement", f"{what}: {len(recorded)} SettlementRecorded events, expected one", signature=sig,
                     account=account)
        else:
            self._compare(recorded[0], reading_fields | {"settled_net_generation_wh": mark,
                                                         "baseline_net_generation_wh": meter.baseline,
                                                         "settlement_count": meter.count}, what, sig, account)

    def _compare(self, e: Event, expected: dict[str, Any], what: str, sig: str, account: Pubkey) -> None:
        wrong = [f"{k} {e.fields[k]} (recomputed {v})" for k, v in expected.items() if k in e.fields
                 and e.fields[k] != v]
        if wrong:
            self.add("settlement", f"{what}: {e.name} disagrees with the signed reading: " + ", ".join(wrong),
                     signature=sig, account=account)

    # trading
    def _order_created(self, tx: ChainTransaction, e: Event) -> None:
        self.orders[e["order"]] = OrderReplay(e["amount"], 1, tx.signature)

    def _order_filled(self, tx: ChainTransaction, e: Event) -> None:
        order = self.orders.get(e["order"])
        if order is None:
            self.add("escrow", "OrderFilled for an order never created", signature=tx.signature, account=e["order"])
            return
        if order.remaining - e["amount"] != e["remaining"]:
            self.add("escrow", f"OrderFilled: {e['amount']} bought of {order.remaining}, but the event says "
                               f"{e['remaining']} remain", signature=tx.signature, account=e["order"])
        order.remaining, order.state = e["remaining"], e["state"]

    def _order_closed_out(self, tx: ChainTransaction, e: Event) -> None:
        order = self.orders.get(e["order"])
        if order is None:
            self.add("escrow", f"{e.name} for an order never created", signature=tx.signature, account=e["order"])
            return
        if e["remaining"] != order.remaining:
            self.add("escrow", f"{e.name}: the event says {e['remaining']} remained, the fills leave "
                               f"{order.remaining}", signature=tx.signature, account=e["order"])
        order.state = 4 if e.name == "OrderCancelled" else 5

    def _order_closed(self, tx: ChainTransaction, e: Event) -> None:
        self.orders.pop(e["order"], None)  # the order id may be used again

    # certificates
    def _certificate_issued(self, tx: ChainTransaction, e: Event) -> None:
        self.issued_certificates[e["certificate"]] = (e["meter"], e["index"], e["from_wh"], e["to_wh"], tx.signature)

    # payments
    def _payment_issued(self, tx: ChainTransaction, e: Event) -> None:
        self.thbc_issued += e["amount"]
        self.payments.append((tx.signature, "ISSUE", e["amount"]))

    def _redeemed(self, tx: ChainTransaction, e: Event) -> None:
        self.thbc_redeemed += e["amount"]
        self.payments.append((tx.signature, "REDEEM", e["amount"]))


_SETTLEMENT_EVENTS = frozenset({"BaselineRecorded", "GridMinted", "SettlementRecorded"})
_HANDLERS: dict[str, Callable[[Ledger, ChainTransaction, Event], None]] = {
    "MeterRegistered": Ledger._meter_registered,
    "MeterStatusChanged": Ledger._status_changed,
    "MeterKeyChanged": Ledger._key_changed,
    "MeterReassigned": Ledger._reassigned,
    "GridConsumed": Ledger._consumed,
    "OrderCreated": Ledger._order_created,
    "OrderFilled": Ledger._order_filled,
    "OrderCancelled": Ledger._order_closed_out,
    "OrderExpired": Ledger._order_closed_out,
    "OrderClosed": Ledger._order_closed,
    "CertificateIssued": Ledger._certificate_issued,
    "PaymentIssued": Ledger._payment_issued,
    "Redeemed": Ledger._redeemed,
}
