"""Ingest: verify each signed reading, store it idempotently, and say exactly what happened to it.

For every readings message the result is an :class:`~gridtokenx.batch.Ack` naming each (meter, seq):

- ``stored``: verified and newly stored;
- ``duplicate``: these exact bytes were already stored (a resend) — nothing changes;
- ``rejected`` with a reason: kept in the quarantine table, never resent. Reasons: ``unknown_gateway``,
  ``gateway_disabled``, ``gateway_mismatch`` (message names another gateway than its topic),
  ``bad_signature``, ``format:<code>`` (see docs/reading-format.md), ``claims_mismatch`` (the
  plain fields disagree with the signed bytes), ``out_of_range`` and ``seq_conflict`` (different
  bytes under a (meter, seq) already stored — e.g. a gateway whose epoch file was lost).

The ack is produced only after the database has committed, so an ack always means "the backend holds it".
A storage failure raises :class:`~backend.storage.database.StorageError` and produces no ack: the gateway resends.

Signature checks run in worker threads: libsodium releases the GIL, so several cores verify at once.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from backend.storage import I64_MAX, QuarantineRow, ReadingRow, Storage
from gridtokenx.batch import (
    Ack,
    AckResult,
    AckStatus,
    BatchEntry,
    BatchFormatError,
    decode_batch,
    encode_batch_entries,
    entry_prefix,
    join_entry,
)
from gridtokenx.reading import READING_LEN, Flags, Reading, ReadingFormatError, decode

__all__ = ["Ingest", "IngestStats", "Prepared"]

log = logging.getLogger(__name__)


@dataclass
class IngestStats:
    messages: int = 0
    malformed_messages: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)


# (key or None, row or None, reason or None) per entry
_Checked = tuple[tuple[str, int] | None, ReadingRow | None, str | None]

# The part of a v1 reading after the meter id: seq, timestamp, import, export, power.
_TAIL = struct.Struct("<QQQQi")
_TAIL_OFFSET = 24
_POWER_PRESENT = int(Flags.POWER_PRESENT)
# Bytes 0-23 (magic, version, flags, reserved, meter id) → what decode() made of them. Whether a
# reading is well-formed depends on those bytes alone, except for one rule about the tail (power must
# be 0 when the power flag is clear); seq, timestamp and energies are any u64, power any i32. So
# decode() judges each distinct header once and a reading with a known header needs only an unpack.
# Bounded: a gateway has a handful of meters, and each meter one or two flag combinations.
_Header = tuple[str, str, bool, bool, int]  # meter_id, clock name, meter_error, power present, flags
_HEADER_CACHE_MAX = 4096


def _judge_header(data: bytes, cache: dict[bytes, _Header]) -> _Header:
    """decode() the whole reading (raises ReadingFormatError) and remember what its header means."""
    reading = decode(data)
    header: _Header = (
        reading.meter_id,
        reading.clock.name.lower(),
        reading.meter_error,
        reading.power_w is not None,
        data[5],
    )
    if len(cache) < _HEADER_CACHE_MAX:
        cache[data[:_TAIL_OFFSET]] = header
    return header


def _check_entries(
    entries: Sequence[BatchEntry],
    public_key: bytes | None,
    reason: str | None,
    gateway_id: str = "",
    received_ms: int = 0,
    headers: dict[bytes, _Header] | None = None,
) -> list[_Checked]:
    """Decode, verify and check the claims of each entry: the backend's hot path, run in worker
    threads. Per reading it is one dictionary look-up, one unpack, one libsodium call (which releases
    the GIL) and one tuple comparison; decode() and check_claims() stay the authority for anything
    unusual — a header not seen before, or any mismatch, is re-checked by them for its precise reason."""
    out: list[_Checked] = []
    append = out.append
    cache: dict[bytes, _Header] = {} if headers is None else headers
    # VerifyKey checks the key's length once; the bare binding skips PyNaCl's per-call wrapper.
    pk = bytes(VerifyKey(public_key)) if public_key is not None and reason is None else None
    unpack_tail = _TAIL.unpack_from
    for entry in entries:
        data = entry.data
        try:
            if len(data) != READING_LEN:
                decode(data)  # refuses it with the precise code
            header = cache.get(data[:_TAIL_OFFSET])
            if header is None:
                header = _judge_header(data, cache)
            meter_id, clock, meter_error, power_present, flags = header
            seq, ts, imp, exp, power = unpack_tail(data, _TAIL_OFFSET)
            if power and not power_present:
                decode(data)  # refuses it with the precise code
        except ReadingFormatError as exc:
            append((entry.key, None, f"format:{exc.code}"))
            continue
        key = (meter_id, seq)
        if pk is None:
            append((key, None, reason or "unknown_gateway"))
            continue
        try:
            crypto_sign_open(entry.signature + data, pk)
        except (BadSignatureError, ValueError):
            append((key, None, "bad_signature"))
            continue
        power_w = power if power_present else None
        claims = entry.claims
        claimed = (
            claims.get("meter_id"),
            claims.get("seq"),
            claims.get("timestamp_ms"),
            claims.get("import_wh"),
            claims.get("export_wh"),
            claims.get("power_w"),
            claims.get("clock"),
            claims.get("meter_error"),
        )
        # Same comparison as check_claims (==, key by key), without building a Reading and a dict.
        if claimed != (meter_id, seq, ts, imp, exp, power_w, clock, meter_error):
            append((key, None, "claims_mismatch"))
            continue
        if seq > I64_MAX or ts > I64_MAX or imp > I64_MAX or exp > I64_MAX:
            append((key, None, "out_of_range"))
            continue
        append(
            (
                key,
                ReadingRow(
                    gateway_id, meter_id, seq, ts, imp, exp, power_w, flags, data, entry.signature, received_ms
                ),
                None,
            )
        )
    return out


@dataclass(frozen=True)
class Prepared:
    """A verified message, ready to be stored (see :meth:`Ingest.prepare` and :meth:`Ingest.commit`)."""

    gateway_id: str
    batch_id: str | None  # None: not a readings batch; its bytes are quarantined whole
    rows: list[ReadingRow]
    quarantined: list[QuarantineRow]
    results: list[AckResult]
    received_ms: int


class Ingest:
    def __init__(self, storage: Storage, *, verify_threads: int = 2, key_cache_s: float = 30.0) -> None:
        self.storage = storage
        self.stats = IngestStats()
        self._pool = ThreadPoolExecutor(max_workers=verify_threads, thread_name_prefix="verify")
        self._threads = verify_threads
        self._keys: dict[str, tuple[float, bytes | None, str | None]] = {}
        self._key_cache_s = key_cache_s
        self._logged: set[tuple[str, str]] = set()
        self._headers: dict[bytes, _Header] = {}  # see _judge_header

    def close(self) -> None:
        self._pool.shutdown(wait=False)

    async def _gateway_key(self, gateway_id: str) -> tuple[bytes | None, str | None]:
        """(public key, None) for an active gateway, else (None, reason). Cached briefly, so a gateway
        commissioned while the backend runs is picked up within ``key_cache_s``."""
        now = time.monotonic()
        cached = self._keys.get(gateway_id)
        if cached is not None and now - cached[0] < self._key_cache_s:
            return cached[1], cached[2]
        record = await self.storage.gateway(gateway_id)
        if record is None:
            result: tuple[bytes | None, str | None] = (None, "unknown_gateway")
        elif record.status != "active":
            result = (None, "gateway_disabled")
        else:
            result = (record.public_key, None)
        # Unknown gateways are re-checked on every message: commissioning should take effect at once.
        if result[0] is not None:
            self._keys[gateway_id] = (now, result[0], result[1])
        return result

    async def handle(self, topic_gateway: str, payload: bytes) -> Ack | None:
        """Process one readings message from ``gridtokenx/v1/<topic_gateway>/readings``."""
        return await self.commit(await self.prepare(topic_gateway, payload))

    async def prepare(self, topic_gateway: str, payload: bytes) -> Prepared:
        """The CPU part: parse and verify. Touches the database only to look up the gateway's key, so
        the receiver can verify the next message while the previous one is being stored."""
        self.stats.messages += 1
        received_ms = int(time.time() * 1000)
        try:
            batch = decode_batch(payload)
        except BatchFormatError as exc:
            self.stats.malformed_messages += 1
            self._log_once(topic_gateway, f"malformed:{exc.code}", f"malformed message from {topic_gateway}: {exc}")
            row = QuarantineRow(topic_gateway, f"malformed:{exc.code}", payload=bytes(payload), received_ms=received_ms)
            return Prepared(topic_gateway, None, [], [row], [], received_ms)
        public_key, reason = await self._gateway_key(topic_gateway)
        if batch.gateway_id != topic_gateway:
            public_key, reason = None, "gateway_mismatch"
        checked = await self._check(batch.entries, public_key, reason, topic_gateway, received_ms)

        rows: list[ReadingRow] = []
        quarantined: list[QuarantineRow] = []
        results: list[AckResult] = []
        for entry, (key, good, why) in zip(batch.entries, checked, strict=True):
            if good is not None:
                rows.append(good)
                continue
            assert why is not None
            quarantined.append(
                QuarantineRow(
                    topic_gateway,
                    why,
                    key[0] if key else None,
                    key[1] if key else None,
                    entry.data,
                    entry.signature,
                    received_ms=received_ms,
                )
            )
            if key is not None:
                results.append(AckResult(key[0], key[1], AckStatus.REJECTED, why))
        return Prepared(topic_gateway, batch.batch_id, rows, quarantined, results, received_ms)

    async def commit(self, prepared: Prepared) -> Ack | None:
        """The database part: store, classify what was already there, quarantine; then the ack
        (None for a message that was not a readings batch at all). Safe to call again after a
        :class:`StorageError`: every write is idempotent or replaces nothing."""
        topic_gateway, rows, received_ms = prepared.gateway_id, prepared.rows, prepared.received_ms
        quarantined = list(prepared.quarantined)
        results = list(prepared.results)
        if prepared.batch_id is None:
            await self.storage.quarantine(quarantined)
            return None
        inserted = await self.storage.insert_readings(rows)
        others = [r for r in rows if r.key not in inserted]
        existing = await self.storage.existing_data(topic_gateway, [r.key for r in others]) if others else {}
        for r in rows:
            if r.key in inserted:
                results.append(AckResult(r.meter_id, r.seq, AckStatus.STORED))
            elif existing.get(r.key) == r.data:
                results.append(AckResult(r.meter_id, r.seq, AckStatus.DUPLICATE))
            else:
                quarantined.append(
                    QuarantineRow(
                        topic_gateway, "seq_conflict", r.meter_id, r.seq, r.data, r.signature, received_ms=received_ms
                    )
                )
                results.append(AckResult(r.meter_id, r.seq, AckStatus.REJECTED, "seq_conflict"))
        await self.storage.quarantine(quarantined)

        self.stats.stored += len(inserted)
        self.stats.duplicates += len(rows) - len(inserted) - sum(1 for q in quarantined if q.reason == "seq_conflict")
        for q in quarantined:
            self.stats.rejected[q.reason] += 1
            self._log_once(
                topic_gateway,
                q.reason,
                f"gateway {topic_gateway}: reading quarantined ({q.reason}), meter {q.meter_id} seq {q.seq}",
            )
        return Ack(prepared.batch_id, tuple(results))

    async def reprocess_quarantine(self, gateway_id: str) -> tuple[int, int]:
        """Run a gateway's readings quarantined as ``unknown_gateway``/``gateway_disabled`` through
        ingest again (after commissioning or re-enabling it). Those now stored, or already held, leave
        the quarantine; the rest stay with their new reason. Returns (released, still refused)."""
        held = await self.storage.quarantined_readings(gateway_id, ("unknown_gateway", "gateway_disabled"))
        self._keys.pop(gateway_id, None)
        released = refused = 0
        for start in range(0, len(held), 500):
            chunk = held[start : start + 500]
            readings: list[Reading | None] = []
            for _, data, _ in chunk:
                try:
                    readings.append(decode(data))
                except ReadingFormatError:
                    readings.append(None)
            payload = encode_batch_entries(
                gateway_id,
                f"requeue-{start}",
                int(time.time() * 1000),
                (
                    join_entry(entry_prefix(r), data, sig)
                    for (_, data, sig), r in zip(chunk, readings, strict=True)
                    if r
                ),
            )
            ack = await self.handle(gateway_id, payload)
            ok = {(r.meter_id, r.seq) for r in (ack.results if ack else ()) if r.status is not AckStatus.REJECTED}
            done = [
                qid
                for (qid, _, _), r in zip(chunk, readings, strict=True)
                if r is not None and (r.meter_id, r.seq) in ok
            ]
            # The fresh verdicts of the refused ones were quarantined again by handle(): drop the old rows.
            await self.storage.release_quarantine([qid for qid, _, _ in chunk])
            released += len(done)
            refused += len(chunk) - len(done)
        return released, refused

    async def _check(
        self,
        entries: Sequence[BatchEntry],
        public_key: bytes | None,
        reason: str | None,
        gateway_id: str,
        received_ms: int,
    ) -> list[_Checked]:
        args = (public_key, reason, gateway_id, received_ms, self._headers)
        if len(entries) < 64 or self._threads <= 1:
            return _check_entries(entries, *args)
        loop = asyncio.get_running_loop()
        size = -(-len(entries) // self._threads)
        parts = await asyncio.gather(
            *(
                loop.run_in_executor(self._pool, _check_entries, entries[i : i + size], *args)
                for i in range(0, len(entries), size)
            )
        )
        return [c for part in parts for c in part]

    def _log_once(self, gateway_id: str, reason: str, message: str) -> None:
        # ERROR the first time per (gateway, reason), DEBUG after: a misconfigured gateway must not
        # drown the log; the counts are in stats and the quarantine table.
        if (gateway_id, reason) not in self._logged:
            self._logged.add((gateway_id, reason))
            log.error("%s (further ones for this gateway and reason at DEBUG)", message)
        else:
            log.debug("%s", message)
