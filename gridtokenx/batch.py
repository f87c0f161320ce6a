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
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, NamedTuple

from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError

from gridtokenx.reading import READING_LEN, Reading, SignedReading, decode

__all__ = [
    "ACK_SIGNATURE_DOMAIN",
    "ACK_VERSION",
    "MAX_MESSAGE_BYTES",
    "MAX_READINGS",
    "MESSAGE_VERSION",
    "TOPIC_ROOT",
    "Ack",
    "AckAuthError",
    "AckResult",
    "AckStatus",
    "Batch",
    "BatchEntry",
    "BatchFormatError",
    "GatewayStatus",
    "ack_topic",
    "check_claims",
    "check_gateway_id",
    "check_shape",
    "decode_ack",
    "decode_batch",
    "decode_status",
    "encode_ack",
    "encode_batch",
    "encode_batch_entries",
    "encode_entry",
    "encode_status",
    "entry_prefix",
    "is_meter_id",
    "join_entry",
    "message_digest",
    "parse_topic",
    "reading_fields",
    "readings_topic",
    "status_topic",
]

MESSAGE_VERSION = 1  # readings and status messages
ACK_VERSION = 2  # acks are signed by the backend since version 2 (docs/mqtt.md, "Ack message")
TOPIC_ROOT = "gridtokenx/v1"
# A readings message of MAX_READINGS entries is at most about 0.97 MiB; the backend refuses bigger messages
# before parsing them, and docs/mqtt.md recommends the broker's message_size_limit at this value.
MAX_MESSAGE_BYTES = 1024 * 1024
MAX_READINGS = 2000
_U64_MAX = (1 << 64) - 1
_I64_MAX = (1 << 63) - 1
# Gateway ids are MQTT topic levels: no '/', '+', '#'; the same characters as [gateway] id allows.
# Batch ids are echoed in acks and logs: the same characters.
_GATEWAY_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_METER_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,16}")
_LOWER_HEX_RE = re.compile(r"(?:[0-9a-f]{2})*")
_KINDS = ("readings", "ack", "status")


class BatchFormatError(ValueError):
    """A message that is not a valid v1 message of its kind. ``code`` is stable and machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class AckAuthError(BatchFormatError):
    """An ack without a valid backend signature, or one that does not answer what it claims to."""


def check_gateway_id(gateway_id: str) -> str:
    if not isinstance(gateway_id, str) or not _GATEWAY_ID_RE.fullmatch(gateway_id):
        raise BatchFormatError("gateway_id", "gateway id must be 1-64 characters from [A-Za-z0-9._:-]")
    return gateway_id


def is_meter_id(value: object) -> bool:
    """A meter id as the reading format allows it (a str of 1-16 characters from [A-Za-z0-9._:-])."""
    return type(value) is str and _METER_ID_RE.fullmatch(value) is not None


def readings_topic(gateway_id: str, root: str = TOPIC_ROOT) -> str:
    return f"{root}/{check_gateway_id(gateway_id)}/readings"


def ack_topic(gateway_id: str, root: str = TOPIC_ROOT) -> str:
    return f"{root}/{check_gateway_id(gateway_id)}/ack"


def status_topic(gateway_id: str, root: str = TOPIC_ROOT) -> str:
    return f"{root}/{check_gateway_id(gateway_id)}/status"


def parse_topic(topic: str, root: str = TOPIC_ROOT) -> tuple[str, str]:
    """``gridtokenx/v1/GW/readings`` → ``("GW", "readings")``; anything else raises."""
    prefix = root + "/"
    if not isinstance(topic, str) or not topic.startswith(prefix):
        raise BatchFormatError("topic", f"topic is not under {root!r}")
    parts = topic[len(prefix) :].split("/")
    if len(parts) != 2 or parts[1] not in _KINDS:
        raise BatchFormatError("topic", f"topic is not {root}/<gateway>/{{{','.join(_KINDS)}}}")
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
# The exact JSON types of each claim: 5.0 is not 5, 0 is not false, true is not 1.
_NONE = type(None)
_CLAIM_TYPES: Final = {
    "meter_id": (str,),
    "seq": (int,),
    "timestamp_ms": (int,),
    "import_wh": (int,),
    "export_wh": (int,),
    "power_w": (int, _NONE),
    "clock": (str,),
    "meter_error": (bool,),
}
_MISSING: Final = object()


_NO_CLAIMS: Final[Mapping[str, Any]] = MappingProxyType({})


class BatchEntry(NamedTuple):
    """One reading as received: the signed bytes plus the fields the sender claims they decode to.

    ``problem`` is set when the entry cannot be judged from its bytes at all (not an object, or its
    ``data`` is not lowercase hex): it is then refused with that reason, by itself. A named tuple:
    the backend makes one per reading on its hot path."""

    data: bytes
    signature: bytes
    claims: Mapping[str, Any] = _NO_CLAIMS
    problem: str | None = None

    @property
    def key(self) -> tuple[str, int] | None:
        """(meter_id, seq) as claimed, if they could be a reading's — used to answer an entry whose
        bytes are bad, so that the gateway can let it go."""
        meter, seq = self.claims.get("meter_id"), self.claims.get("seq")
        if type(meter) is str and _METER_ID_RE.fullmatch(meter) and type(seq) is int and 0 <= seq <= _U64_MAX:
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


def check_shape(payload: bytes, max_bytes: int = MAX_MESSAGE_BYTES, max_readings: int = MAX_READINGS) -> None:
    """Refuse, before any parsing, a message bigger than ``max_bytes`` or with more JSON containers and
    values than a message of ``max_readings`` entries can have. Counting bytes runs at memory speed
    and bounds what parsing can allocate: every JSON value but the first of a container follows a
    comma, so objects, arrays and commas bound the number of values (a 5 MB array of empty objects
    would otherwise cost about 100 MB of Python objects)."""
    if len(payload) > max_bytes:
        raise BatchFormatError("size", f"message of {len(payload)} bytes exceeds the limit of {max_bytes}")
    slack = 64
    if (
        payload.count(b"[") > slack
        or payload.count(b"{") > max_readings + slack
        or payload.count(b",") > 12 * (max_readings + slack)
    ):
        raise BatchFormatError("shape", f"message has more JSON values than {max_readings} readings can have")


def _load_object(payload: bytes | str, kind: str) -> dict[str, Any]:
    try:
        # Strict UTF-8 (json.loads would also guess UTF-16 and UTF-32 from bytes).
        text = payload.decode("utf-8") if isinstance(payload, bytes | bytearray | memoryview) else payload
        obj = json.loads(text)
    # Deep nesting raises RecursionError, huge numbers ValueError, invalid UTF-8 UnicodeDecodeError:
    # none of them may escape, whatever the message holds.
    except (ValueError, RecursionError, MemoryError, OverflowError, TypeError) as exc:
        raise BatchFormatError("json", f"{kind} message is not JSON ({type(exc).__name__})") from None
    if not isinstance(obj, dict):
        raise BatchFormatError("json", f"{kind} message must be a JSON object, got {type(obj).__name__}")
    version = ACK_VERSION if kind == "ack" else MESSAGE_VERSION
    if type(obj.get("v")) is not int or obj["v"] != version:
        raise BatchFormatError("version", f"{kind} message version is not {version}")
    return obj


def _strict_hex(value: object) -> bytes | None:
    """Bytes from lowercase hex without separators (the only documented form), else None."""
    if type(value) is not str or not _LOWER_HEX_RE.fullmatch(value):
        return None
    return bytes.fromhex(value)


def _entry(item: object) -> BatchEntry:
    """One entry the fast path did not take: say precisely what is wrong, for this entry only."""
    if type(item) is not dict:
        return BatchEntry(b"", b"", _NO_CLAIMS, "malformed:entry")
    data = _strict_hex(item.get("data"))
    if data is None:
        return BatchEntry(b"", b"", item, "malformed:entry")
    # Bytes of any length are kept: the reading format names what is wrong (format:length,
    # format:version, format:prefix). A signature that is not 64 bytes simply does not verify.
    signature = _strict_hex(item.get("sig"))
    return BatchEntry(data, signature if signature is not None else b"", item)


def decode_batch(
    payload: bytes | str, *, max_bytes: int = MAX_MESSAGE_BYTES, max_readings: int = MAX_READINGS
) -> Batch:
    """Parse a readings message. Structural problems raise; a bad entry becomes an entry with a
    ``problem`` or bytes that fail verification, so that it does not hide the good ones next to it."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8", "surrogatepass")
    check_shape(payload, max_bytes, max_readings)
    obj = _load_object(payload, "readings")
    gateway = check_gateway_id(obj.get("gateway"))  # type: ignore[arg-type]
    batch_id, sent_ms, items = obj.get("batch"), obj.get("sent_ms"), obj.get("readings")
    if type(batch_id) is not str or not _GATEWAY_ID_RE.fullmatch(batch_id):
        raise BatchFormatError("batch", "batch id must be 1-64 characters from [A-Za-z0-9._:-]")
    if type(sent_ms) is not int or not 0 <= sent_ms <= _U64_MAX:
        raise BatchFormatError("sent_ms", "sent_ms must be a non-negative integer")
    if type(items) is not list:
        raise BatchFormatError("readings", "readings must be a list")
    if len(items) > max_readings:
        raise BatchFormatError("readings", f"more than {max_readings} readings in one message")
    entries: list[BatchEntry] = []
    append = entries.append
    fromhex = bytes.fromhex
    for item in items:
        # Fast path for the usual entry: 120 and 128 hex digits give 60 and 64 bytes only without
        # separators, and hex() gives them back only if they were lowercase.
        if type(item) is dict:
            d, s = item.get("data"), item.get("sig")
            if type(d) is str and type(s) is str and len(d) == 2 * READING_LEN and len(s) == 128:
                try:
                    data, sig = fromhex(d), fromhex(s)
                except ValueError:
                    pass
                else:
                    if len(data) == READING_LEN and len(sig) == 64 and data.hex() == d and sig.hex() == s:
                        # The parsed object itself serves as the claims (only _CLAIM_KEYS are ever
                        # read): no copy on the backend's hot path.
                        append(BatchEntry(data, sig, item))
                        continue
        append(_entry(item))
    return Batch(gateway_id=gateway, batch_id=batch_id, sent_ms=sent_ms, entries=tuple(entries))


def check_claims(entry: BatchEntry, reading: Reading | None = None) -> Reading:
    """Decode the signed bytes and check the entry's plain fields say exactly the same — same values
    and same JSON types; return the reading."""
    reading = reading if reading is not None else decode(entry.data)
    expected = reading_fields(reading)
    for key in _CLAIM_KEYS:
        claimed = entry.claims.get(key, _MISSING)
        if type(claimed) not in _CLAIM_TYPES[key] or claimed != expected[key]:
            raise BatchFormatError("claims", f"field {key} does not match the signed bytes")
    return reading


# --- acknowledgements --------------------------------------------------------------------------
#
# Since version 2 every ack is signed by the backend's ack key (Ed25519), which the gateway is
# commissioned with: a publisher on the ack topic without that key cannot make a gateway delete
# anything. The signature covers the gateway id, the batch id, the SHA-256 of the exact readings
# message answered and every (meter, seq, verdict), so a replayed genuine ack can only confirm what
# the backend really did with the very message it answers.

ACK_SIGNATURE_DOMAIN = b"GridTokenX ack v2\n"
_SIG_HEAD = b',"sig":"'
_SIG_TAIL = b'"}'
_SIG_SUFFIX_LEN = len(_SIG_HEAD) + 128 + len(_SIG_TAIL)
MAX_ACK_BYTES = 1 << 20


class AckStatus(enum.StrEnum):
    STORED = "stored"  # newly stored
    DUPLICATE = "duplicate"  # the backend already held these exact bytes
    REJECTED = "rejected"  # kept in the backend's quarantine; the gateway must not resend it


class AckResult(NamedTuple):
    """What happened to one entry. A named tuple: an ack carries one per entry, made and parsed on
    both sides' hot paths. ``meter_id`` and ``seq`` are None for an entry that named no valid
    (meter, seq) — nothing a gateway could hold."""

    meter_id: str | None
    seq: int | None
    status: AckStatus
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Ack:
    gateway_id: str
    batch_id: str
    digest: bytes  # message_digest() of the readings message this ack answers
    results: tuple[AckResult, ...]


def message_digest(payload: bytes) -> bytes:
    """What an ack names the readings message by: SHA-256 over its exact bytes."""
    return hashlib.sha256(payload).digest()


def encode_ack(ack: Ack, sign: Callable[[bytes], bytes]) -> bytes:
    """The signed ack payload. ``sign`` is the backend's Ed25519 signing function (64-byte signature)."""
    # AckStatus is a str enum: json writes a member as its value.
    results = [
        [r.meter_id, r.seq, r.status, r.reason] if r.reason else [r.meter_id, r.seq, r.status] for r in ack.results
    ]
    body = json.dumps(
        {
            "v": ACK_VERSION,
            "gateway": check_gateway_id(ack.gateway_id),
            "batch": ack.batch_id,
            "digest": ack.digest.hex(),
            "results": results,
        },
        separators=(",", ":"),
    ).encode()
    signature = sign(ACK_SIGNATURE_DOMAIN + body)
    if len(signature) != 64:
        raise ValueError("an ack signature is 64 bytes")
    return b"".join((body[:-1], _SIG_HEAD, signature.hex().encode(), _SIG_TAIL))


_ACK_STATUSES = {s.value: s for s in AckStatus}


def decode_ack(payload: bytes, public_key: bytes) -> Ack:
    """Check the backend's signature first, then parse. Raises :class:`AckAuthError` for an ack that
    is not signed by ``public_key`` (nothing of it is parsed) and :class:`BatchFormatError` for a
    signed one that is malformed."""
    payload = bytes(payload)
    if not _SIG_SUFFIX_LEN < len(payload) <= MAX_ACK_BYTES or not (
        payload.endswith(_SIG_TAIL) and payload[-_SIG_SUFFIX_LEN:].startswith(_SIG_HEAD)
    ):
        raise AckAuthError("ack_auth", "ack carries no backend signature (version 1 acks are refused)")
    signature = _strict_hex(payload[-_SIG_SUFFIX_LEN + len(_SIG_HEAD) : -len(_SIG_TAIL)].decode("ascii", "replace"))
    body = payload[:-_SIG_SUFFIX_LEN] + b"}"
    try:
        if signature is None:
            raise ValueError
        crypto_sign_open(signature + ACK_SIGNATURE_DOMAIN + body, public_key)
    except (BadSignatureError, ValueError, TypeError):
        raise AckAuthError("ack_auth", "ack signature does not verify with the backend's ack key") from None
    obj = _load_object(body, "ack")
    gateway, batch_id, digest, items = obj.get("gateway"), obj.get("batch"), obj.get("digest"), obj.get("results")
    raw_digest = _strict_hex(digest)
    if (
        type(batch_id) is not str
        or type(items) is not list
        or raw_digest is None
        or len(raw_digest) != 32
        or type(gateway) is not str
    ):
        raise BatchFormatError("ack", "ack needs gateway, batch, a 32-byte hex digest and a list 'results'")
    results: list[AckResult] = []
    append = results.append
    statuses = _ACK_STATUSES
    for i, item in enumerate(items):
        status = statuses.get(item[2]) if type(item) is list and len(item) in (3, 4) and type(item[2]) is str else None
        if (
            status is None
            or not ((type(item[0]) is str and type(item[1]) is int) or (item[0] is None and item[1] is None))
            or (len(item) == 4 and type(item[3]) is not str)
        ):
            raise BatchFormatError("ack", f"results[{i}] must be [meter_id, seq, status(, reason)]")
        append(AckResult(item[0], item[1], status, item[3] if len(item) == 4 else None))
    return Ack(gateway_id=gateway, batch_id=batch_id, digest=raw_digest, results=tuple(results))


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


_FINGERPRINT_RE = re.compile(r"[0-9a-f]{4}(?::[0-9a-f]{4}){3}")
_SOFTWARE_RE = re.compile(r"[ -~]{1,128}")  # printable ASCII
_COUNTER_NAME_RE = re.compile(r"[a-z_]{1,32}")


def decode_status(payload: bytes | str, *, max_bytes: int = 64 * 1024) -> GatewayStatus:
    """Parse a status message; every field that is present must have its documented form (the
    values reach the database and the operator's screen)."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8", "surrogatepass")
    check_shape(payload, max_bytes, 0)
    obj = _load_object(payload, "status")
    state, ts = obj.get("state"), obj.get("ts_ms")
    if state not in ("online", "offline") or type(ts) is not int or not 0 <= ts <= _I64_MAX:
        raise BatchFormatError("status", "status needs state 'online'|'offline' and ts_ms as a 63-bit integer")
    public_key, fp, software = obj.get("public_key"), obj.get("fingerprint"), obj.get("software")
    if public_key is not None and (
        type(public_key) is not str or len(public_key) != 64 or _strict_hex(public_key) is None
    ):
        raise BatchFormatError("status", "public_key must be 64 lowercase hex digits")
    if fp is not None and (type(fp) is not str or not _FINGERPRINT_RE.fullmatch(fp)):
        raise BatchFormatError("status", "fingerprint must be four groups of four lowercase hex digits")
    if software is not None and (type(software) is not str or not _SOFTWARE_RE.fullmatch(software)):
        raise BatchFormatError("status", "software must be 1-128 printable ASCII characters")
    outbox = obj.get("outbox", {})
    if type(outbox) is not dict or not all(
        _COUNTER_NAME_RE.fullmatch(k) and type(v) is int and 0 <= v <= _I64_MAX for k, v in outbox.items()
    ):
        raise BatchFormatError("status", "outbox must map counter names to non-negative 63-bit integers")
    return GatewayStatus(
        gateway_id=check_gateway_id(obj.get("gateway")),  # type: ignore[arg-type]
        online=state == "online",
        timestamp_ms=ts,
        public_key=public_key,
        fingerprint=fp,
        software=software,
        outbox=outbox,
    )
