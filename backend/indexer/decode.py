"""Our programs' events in a transaction, in one vocabulary the indexer, the feed and the API share.

The programs log one typed, versioned event per state change (docs/programs.md "Events"); the programs'
decoder (``programs.events.decode_transaction_events``) finds them in a transaction's logs, attributed to
the program that logged them — bytes that mimic our events logged by any other program are ignored — and
to their top-level instruction. :func:`decode_transaction` turns each into a :class:`ChainEvent`:
``kind`` (below), the layout ``version``, the instruction index and the event's index within that
instruction (with the signature: the apply-once key), the ``subject`` account it is about, ``meter_id``
when it has one, the ``wallets`` it concerns and ``payload`` — the event's fields as JSON values (addresses
base58, amounts integers in base units, statuses by name, references as text or hex).

- registry: UserRegistered → ``user_registered``, MeterRegistered → ``meter_registered``,
  MeterStatusChanged → ``meter_status_changed``, MeterKeyChanged → ``meter_key_changed``,
  MeterReassigned → ``meter_reassigned``, SettlementRecorded → ``settlement_recorded``;
- energy_token: BaselineRecorded → ``baseline_recorded``, GridMinted → ``minted``, GridConsumed →
  ``grid_consumed``;
- trading: OrderCreated → ``order_created``, OrderFilled → ``order_filled``, TradeExecuted →
  ``trade_executed``, OrderCancelled → ``order_cancelled``, OrderExpired → ``order_expired``, OrderClosed →
  ``order_closed``, MarketUpdated → ``market_updated``;
- certificates: CertificateIssued / Validated / Transferred / Retired / Revoked / Expired →
  ``certificate_issued`` … ``certificate_expired``;
- payments: PaymentIssued → ``thbc_issued``, Redeemed → ``thbc_redeemed``, OperatorChanged →
  ``payment_operator_changed``.

The one-time configuration events (``*_initialized``) are recorded too. A transaction whose logs were cut
off (``Log truncated``) raises :class:`LogError`; bytes one of our programs logged
that this version cannot decode (a newer event version after a program upgrade) raise
:class:`UnknownEvent`: the indexer stops there until the backend is upgraded, rather than skip them.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from solders.pubkey import Pubkey

from backend.indexer.source import ChainTransaction
from programs.certificates import client as certificates
from programs.client.events import EventDecodeError, EventsTruncated, LoggedEvent
from programs.deployment import Deployment
from programs.events import CATALOGUES, decode_transaction_events
from programs.payments import client as payments
from programs.registry import client as registry
from programs.trading import client as trading

__all__ = ["ChainEvent", "Decoder", "LogError", "UnknownEvent", "decode_transaction", "event_kinds", "kind_of"]

_USER_KINDS = {int(registry.UserKind.PROSUMER): "prosumer", int(registry.UserKind.CONSUMER): "consumer"}
_METER_STATUS = {int(s): s.name for s in registry.MeterStatus}
_CERT_STATUS = {int(s): s.name for s in certificates.CertificateStatus}
_ORDER_STATE = {int(s): s.name for s in trading.OrderState}
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
# Event class name → kind, where the kind is not the class name in snake case.
_KINDS = {"GridMinted": "minted", "PaymentIssued": "thbc_issued", "Redeemed": "thbc_redeemed",
          "OperatorChanged": "payment_operator_changed"}
_WALLET_FIELDS = ("wallet", "owner", "previous_owner", "seller", "buyer", "holder", "previous_holder", "payer")


class LogError(ValueError):
    """The transaction's logs were cut off (``Log truncated``): some of its events are missing."""


class UnknownEvent(Exception):
    """One of our programs logged an event this backend cannot decode: upgrade the backend."""


@dataclass(frozen=True)
class ChainEvent:
    program: str
    kind: str
    version: int
    ix_index: int
    event_index: int
    subject: str | None
    meter_id: str | None
    wallets: tuple[str, ...]
    payload: dict[str, Any] = field(default_factory=dict)


AccountReader = Callable[[Pubkey], Awaitable[bytes | None]]


class Decoder:
    """Decodes one deployment's events. (``read_account`` is kept for callers that pass one; the events
    carry every field the indexer records, so it is not used.)"""

    def __init__(self, deployment: Deployment, read_account: AccountReader | None = None) -> None:
        self.deployment = deployment
        self.read_account = read_account
        self.programs = deployment.by_name()

    async def decode(self, tx: ChainTransaction) -> list[ChainEvent]:
        return decode_transaction(tx, self)


def kind_of(name: str) -> str:
    """The kind an event class (by its name, e.g. ``TradeExecuted``) is recorded as (``trade_executed``)."""
    return _KINDS.get(name) or _CAMEL.sub("_", name).lower()


def event_kinds() -> dict[str, list[str]]:
    """{program: the kinds its events are recorded as}: the vocabulary of ``chain_events``, the live feed
    and ``/ws`` (docs/backend.md "Events" lists the same, a test keeps the two equal)."""
    return {program: [kind_of(layout.name) for layout in catalogue.layouts()]
            for program, catalogue in CATALOGUES.items()}


def _json(value: Any) -> Any:
    if isinstance(value, Pubkey):
        return str(value)
    if isinstance(value, bytes):
        # The only byte fields our events carry are payment references: "KBANK-2025-000123", or 0x + hex
        # for a binary one — the text D7 keeps and the api takes (payments.reference_text).
        return payments.reference_text(value) if len(value) == payments.REFERENCE_LEN else value.hex()
    return value


_KEY_FIELDS = ("meter_key", "previous_key")  # a gateway's Ed25519 key, not an account: hex, as elsewhere


def _payload(event: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        out[f.name] = bytes(value).hex() if f.name in _KEY_FIELDS and isinstance(value, Pubkey) else _json(value)
    return out


def _described(kind: str, p: dict[str, Any]) -> dict[str, Any]:
    """Names for the enumerations the programs log as numbers, and the fields the stores expect."""
    if kind == "user_registered":
        p["user_type"] = _USER_KINDS.get(p["kind"], str(p["kind"]))
    for key in ("status", "previous_status"):
        if key in p and isinstance(p[key], int):
            table = _CERT_STATUS if kind.startswith("certificate_") else _METER_STATUS
            p[key] = table.get(p[key], str(p[key]))
    if kind in ("order_filled", "order_closed") and isinstance(p.get("state"), int):
        p["state"] = _ORDER_STATE.get(p["state"], str(p["state"]))
    if kind == "minted":
        p["minted"] = p["amount"]
    return p


def decode_transaction(tx: ChainTransaction, decoder: Decoder) -> list[ChainEvent]:
    if tx.failed:
        return []
    try:
        found = decode_transaction_events(tx.logs, decoder.programs,
                                          instruction_programs=[ix.program for ix in tx.instructions]).complete()
    except EventsTruncated as exc:
        raise LogError(str(exc)) from None
    except EventDecodeError as exc:
        raise UnknownEvent(f"transaction {tx.signature}: {exc}") from None
    per_instruction: dict[int, int] = {}
    out: list[ChainEvent] = []
    fills = {(e.instruction_index, str(e.event.order)): e.event for e in found
             if isinstance(e.event, trading.OrderFilled)}
    for logged in found:
        index = per_instruction.get(logged.instruction_index, 0)
        per_instruction[logged.instruction_index] = index + 1
        out.append(_event(logged, index, fills))
    return out


def _event(logged: LoggedEvent, index: int, fills: dict[tuple[int, str], Any]) -> ChainEvent:
    event = logged.event
    kind = kind_of(type(event).__name__)
    p = _described(kind, _payload(event))
    if kind == "trade_executed":
        # TradeExecuted says what moved; the order's remaining amount is in its OrderFilled.
        fill = fills.get((logged.instruction_index, p["order"]))
        if fill is not None:
            p["remaining"] = fill.remaining
    subject = next((p[k] for k in ("order", "certificate", "meter", "user", "deposit", "market", "config")
                    if isinstance(p.get(k), str)), None)
    wallets = tuple(dict.fromkeys(p[k] for k in _WALLET_FIELDS if isinstance(p.get(k), str)))
    meter_id = p.get("meter_id") if isinstance(p.get("meter_id"), str) else None
    version = type(event).layout.version
    return ChainEvent(logged.program, kind, version, logged.instruction_index, index, subject, meter_id, wallets, p)
