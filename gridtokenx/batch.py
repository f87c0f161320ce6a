"""The MQTT messages between gateway and backend, version 1 — one definition for both sides.

docs/mqtt.md is the normative description; in short::

    gridtokenx/v1/<gateway>/readings   gateway → backend  QoS 1      a batch of signed readings (JSON)
    gridtokenx/v1/<gateway>/ack        backend → gateway  QoS 1      which readings the backend now holds
    gridtokenx/v1/<gateway>/status     gateway            retained   online/offline (birth and Last Will)

Messages are JSON so any MQTT subscriber can use them without our code: each reading carries its
decoded fields next to the 60 signed bytes and the signature (both hex), so a third party can check
it with any Ed25519 library. Only the signed bytes are authoritative; a receiver that trusts the
decoded fields must first check that they match the bytes (:func:`check_claims` does that).
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from gridtokenx.reading import READING_LEN, SIGNATURE_LEN, Reading, SignedReading, decode

__all__ = [
    "MESSAGE_VERSION",
    "TOPIC_ROOT",
    "Ack",
    "AckResult",
    "AckStatus",
    "Batch",
    "BatchEntry",
    "BatchFormatError",
    "GatewayStatus",
    "ack_topic",
    "check_claims",
    "check_gateway_id",
    "decode_ack",
    "decode_batch",
    "decode_status",
    "encode_ack",
    "encode_batch",
    "encode_batch_entries",
    "encode_entry",
    "encode_status",
    "entry_prefix",
    "join_entry",
    "parse_topic",
    "reading_fields",
    "readings_topic",
    "status_topic",
]

MESSAGE_VERSION = 1
TOPIC_ROOT = "gridtokenx/v1"
# Gateway ids are MQTT topic levels: no '/', '+', '#'; the same characters as [gateway] id allows.
_GATEWAY_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_KINDS = ("readings", "ack", "status")


class BatchFormatError(ValueError):
    """A message that is not a valid v1 message of its kind. ``code`` is stable and machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


def check_gateway_id(gateway_id: str) -> str:
    if not isinstance(gateway_id, str) or not _GATEWAY_ID_RE.fullmatch(gateway_id):
        raise BatchFormatError("gateway_id", f"gateway id {gateway_id!r} must be 1-64 characters from [A-Za-z0-9._:-]")
    return gateway_id


def readings_topic(gateway_id: str, root: str = TOPIC_ROOT) -> str:
    return f"{root}/{check_gateway_id(gateway_id)}/readings"


def ack_topic(gateway_id: str, root: str = TOPIC_ROOT) -> str:
    return f"{root}/{check_gateway_id(gateway_id)}/ack"


def status_topic(gateway_id: str, root: str = TOPIC_ROOT) -> str:
    return f"{root}/{check_gateway_id(gateway_id)}/status"


def parse_topic(topic: str, root: str = TOPIC_ROOT) -> tuple[str, str]:
    """``gridtokenx/v1/GW/readings`` → ``("GW", "readings")``; anything else raises."""
    prefix = root + "/"
    if not topic.startswith(prefix):
        raise BatchFormatError("topic", f"topic {topic!r} is not under {root!r}")
    parts = topic[len(prefix) :].split("/")
    if len(parts) != 2 or parts[1] not in _KINDS:
        raise BatchFormatError("topic", f"topic {topic!r} is not {root}/<gateway>/{{{','.join(_KINDS)}}}")
    return check_gateway_id(parts[0]), parts[1]


# --- readings ----------------------------------------------------------------------------------


def reading_fields(reading: Reading) -> dict[str, Any]:
    """The decoded fields as they appear in a batch entry (and are checked by :func:`check_claims`)."""
    return {
        "meter_id": reading.meter_id,
        "seq": reading.seq,
        "timestamp_ms": reading.timestamp_ms,
        "import_wh": reading.import_wh,
        "export_wh": reading.export_wh,
        "power_w": reading.power_w,
        "clock": reading.clock.name.lower(),
        "meter_error": reading.meter_error,
    }


_CLAIM_KEYS = ("meter_id", "seq", "timestamp_ms", "import_wh", "export_wh", "power_w", "clock", "meter_error")


@dataclass(frozen=True, slots=True)
class BatchEntry:
    """One reading as received: the signed bytes plus the fields the sender claims they decode to."""

    data: bytes
    signature: bytes
    claims: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, int] | None:
        """(meter_id, seq) as claimed — usable to acknowledge even an entry whose bytes are bad."""
        meter, seq = self.claims.get("meter_id"), self.claims.get("seq")
        if isinstance(meter, str) and isinstance(seq, int) and not isinstance(seq, bool):
            return meter, seq
        return None


@dataclass(frozen=True, slots=True)
class Batch:
    gateway_id: str
    batch_id: str
    sent_ms: int
    entries: tuple[BatchEntry, ...]


def entry_prefix(reading: Reading) -> bytes:
    """The decoded-fields part of a batch entry: a JSON object without its closing brace. The
    gateway makes it once, when it signs (decoding is the costly part), and stores it beside the
    signed bytes; :func:`join_entry` completes it when the reading is sent."""
    return json.dumps(reading_fields(reading), separators=(",", ":")).encode()[:-1]


def join_entry(prefix: bytes, data: bytes, signature: bytes) -> bytes:
    """One batch entry (JSON object bytes) from :func:`entry_prefix` and the signed bytes."""
    return b"".join((prefix, b',"data":"', data.hex().encode(), b'","sig":"', signature.hex().encode(), b'"}'))


def encode_entry(reading: Reading, signed: SignedReading) -> bytes:
    """One reading as it appears in a batch (JSON object bytes)."""
    return join_entry(entry_prefix(reading), signed.data, signed.signature)


def encode_batch_entries(gateway_id: str, batch_id: str, sent_ms: int, entries: Iterable[bytes]) -> bytes:
    """The JSON payload of one readings message from entries made by :func:`encode_entry`."""
    head = json.dumps(
        {"v": MESSAGE_VERSION, "gateway": check_gateway_id(gateway_id), "batch": batch_id, "sent_ms": sent_ms},
        separators=(",", ":"),
    ).encode()
    # One join, one copy of the (up to a few hundred kB) payload.
    parts = [head[:-1] + b',"readings":[']
    for entry in entries:
        parts.append(entry)
        parts.append(b",")
    if len(parts) > 1:
        parts.pop()
    parts.append(b"]}")
    return b"".join(parts)


def encode_batch(
    gateway_id: str, batch_id: str, sent_ms: int, readings: Iterable[tuple[Reading, SignedReading]]
) -> bytes:
    """The JSON payload of one readings message. ``readings`` pairs each decoded reading with its bytes."""
    return encode_batch_entries(gateway_id, batch_id, sent_ms, (encode_entry(r, s) for r, s in readings))


def _load_object(payload: bytes | str, kind: str) -> dict[str, Any]:
    try:
        obj = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BatchFormatError("json", f"{kind} message is not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise BatchFormatError("json", f"{kind} message must be a JSON object, got {type(obj).__name__}")
    if obj.get("v") != MESSAGE_VERSION:
        raise BatchFormatError("version", f"{kind} message version {obj.get('v')!r} (this code knows 1)")
    return obj


def _hex_field(item: Mapping[str, Any], name: str, length: int, index: int) -> bytes:
    value = item.get(name)
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) else None
    except ValueError:
        raw = None
    if raw is None or len(raw) != length:
        raise BatchFormatError("entry", f"readings[{index}].{name} must be {length} bytes as hex")
    return raw


def decode_batch(payload: bytes | str) -> Batch:
    """Parse a readings message. Structural problems raise; per-entry byte problems are left to
    the verifier so that one bad entry does not hide the good ones next to it."""
    obj = _load_object(payload, "readings")
    gateway = check_gateway_id(obj.get("gateway"))  # type: ignore[arg-type]
    batch_id, sent_ms, items = obj.get("batch"), obj.get("sent_ms"), obj.get("readings")
    if not isinstance(batch_id, str) or not 1 <= len(batch_id) <= 64:
        raise BatchFormatError("batch", "batch id must be a string of 1-64 characters")
    if not isinstance(sent_ms, int) or isinstance(sent_ms, bool) or sent_ms < 0:
        raise BatchFormatError("sent_ms", "sent_ms must be a non-negative integer")
    if not isinstance(items, list):
        raise BatchFormatError("readings", "readings must be a list")
    entries: list[BatchEntry] = []
    append = entries.append
    fromhex = bytes.fromhex
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise BatchFormatError("entry", f"readings[{i}] must be an object")
        # Fast path for the usual entry; _hex_field says precisely what is wrong with any other.
        try:
            data = fromhex(item["data"])
            sig = fromhex(item["sig"])
        except (KeyError, TypeError, ValueError):
            data, sig = b"", b""
        if len(data) != READING_LEN or len(sig) != SIGNATURE_LEN:
            data = _hex_field(item, "data", READING_LEN, i)
            sig = _hex_field(item, "sig", SIGNATURE_LEN, i)
        # The parsed object itself serves as the claims (only _CLAIM_KEYS are ever read): no copy on
        # the backend's hot path.
        append(BatchEntry(data, sig, item))
    return Batch(gateway_id=gateway, batch_id=batch_id, sent_ms=sent_ms, entries=tuple(entries))


def check_claims(entry: BatchEntry, reading: Reading | None = None) -> Reading:
    """Decode the signed bytes and check the entry's plain fields say the same; return the reading."""
    reading = reading if reading is not None else decode(entry.data)
    expected = reading_fields(reading)
    for key in _CLAIM_KEYS:
        if entry.claims.get(key) != expected[key]:
            raise BatchFormatError(
                "claims",
                f"field {key}={entry.claims.get(key)!r} does not match the signed bytes ({expected[key]!r})",
            )
    return reading


# --- acknowledgements --------------------------------------------------------------------------


class AckStatus(enum.StrEnum):
    STORED = "stored"  # newly stored
    DUPLICATE = "duplicate"  # the backend already held these exact bytes
    REJECTED = "rejected"  # kept in the backend's quarantine; the gateway must not resend it


class AckResult(NamedTuple):
    """What happened to one reading. A named tuple: an ack carries one per reading, made and parsed
    on both sides' hot paths."""

    meter_id: str
    seq: int
    status: AckStatus
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Ack:
    batch_id: str
    results: tuple[AckResult, ...]


def encode_ack(ack: Ack) -> bytes:
    # AckStatus is a str enum: json writes a member as its value.
    results = [
        [r.meter_id, r.seq, r.status, r.reason] if r.reason else [r.meter_id, r.seq, r.status] for r in ack.results
    ]
    return json.dumps({"v": MESSAGE_VERSION, "batch": ack.batch_id, "results": results}, separators=(",", ":")).encode()


_ACK_STATUSES = {s.value: s for s in AckStatus}


def decode_ack(payload: bytes | str) -> Ack:
    obj = _load_object(payload, "ack")
    batch_id, items = obj.get("batch"), obj.get("results")
    if not isinstance(batch_id, str) or not isinstance(items, list):
        raise BatchFormatError("ack", "ack needs a string 'batch' and a list 'results'")
    results: list[AckResult] = []
    append = results.append
    statuses = _ACK_STATUSES
    for i, item in enumerate(items):
        status = statuses.get(item[2]) if type(item) is list and len(item) in (3, 4) and type(item[2]) is str else None
        if (
            status is None
            or not isinstance(item[0], str)
            or not isinstance(item[1], int)
            or isinstance(item[1], bool)
            or (len(item) == 4 and not isinstance(item[3], str))
        ):
            raise BatchFormatError("ack", f"results[{i}] must be [meter_id, seq, status(, reason)]")
        append(AckResult(item[0], item[1], status, item[3] if len(item) == 4 else None))
    return Ack(batch_id=batch_id, results=tuple(results))


# --- status (birth message and Last Will) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GatewayStatus:
    gateway_id: str
    online: bool
    timestamp_ms: int
    public_key: str | None = None  # hex, so a third party can verify; check its fingerprint first
    fingerprint: str | None = None
    software: str | None = None
    outbox: Mapping[str, int] = field(default_factory=dict)


def encode_status(status: GatewayStatus) -> bytes:
    obj: dict[str, Any] = {
        "v": MESSAGE_VERSION,
        "gateway": check_gateway_id(status.gateway_id),
        "state": "online" if status.online else "offline",
        "ts_ms": status.timestamp_ms,
    }
    for name in ("public_key", "fingerprint", "software"):
        if getattr(status, name) is not None:
            obj[name] = getattr(status, name)
    if status.outbox:
        obj["outbox"] = dict(status.outbox)
    return json.dumps(obj, separators=(",", ":")).encode()


def decode_status(payload: bytes | str) -> GatewayStatus:
    obj = _load_object(payload, "status")
    state = obj.get("state")
    if state not in ("online", "offline") or not isinstance(obj.get("ts_ms"), int):
        raise BatchFormatError("status", "status needs state 'online'|'offline' and an integer ts_ms")
    outbox = obj.get("outbox") or {}
    return GatewayStatus(
        gateway_id=check_gateway_id(obj.get("gateway")),  # type: ignore[arg-type]
        online=state == "online",
        timestamp_ms=obj["ts_ms"],
        public_key=obj.get("public_key"),
        fingerprint=obj.get("fingerprint"),
        software=obj.get("software"),
        outbox={k: v for k, v in outbox.items() if isinstance(v, int)} if isinstance(outbox, dict) else {},
    )
