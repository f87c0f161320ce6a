"""Ingest: verify each signed reading, store it idempotently, and say exactly what happened to it.

For every readings message the result is an :class:`~gridtokenx.batch.Ack` with one result per entry,
in the order of the entries (docs/mqtt.md):

- ``stored``: verified and newly stored;
- ``duplicate``: these exact bytes were already stored (a resend, or the same reading twice in one
  message) — nothing changes;
- ``rejected`` with a reason: kept in the quarantine table, never resent. Reasons: ``unknown_gateway``,
  ``gateway_disabled``, ``bad_gateway_key`` (the commissioned key is no prime-order point),
  ``gateway_mismatch`` (message names another gateway than its topic),
  ``bad_signature``, ``format:<code>`` (see docs/reading-format.md), ``malformed:entry`` (an entry
  that is not an object or whose ``data`` is not lowercase hex), ``claims_mismatch`` (the plain
  fields disagree with the signed bytes, in value or in JSON type), ``out_of_range`` and
  ``seq_conflict`` (different bytes under a (meter, seq) already stored or earlier in the same
  message — e.g. a gateway whose epoch file was lost).

A message that is not a readings batch at all is quarantined whole (``malformed:<code>``) and gets no
ack. Whatever a message holds, judging it raises nothing but :class:`StorageError` (the database is
unreachable: the receiver retries); anything unforeseen quarantines that message as
``internal_error`` and is logged with its traceback, rate-limited.

The ack is produced only after the database has committed, so an ack always means "the backend holds it".

Signature checks (backend.ingest.verify: ed25519-dalek's verify_strict, as on chain) run in a worker
thread, so the event loop stores and acknowledges the previous message meanwhile. The library holds
the GIL: more cores are used by running several ingest processes on a shared subscription
(docs/mqtt.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import struct
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

from solders.pubkey import Pubkey
from solders.signature import Signature

from backend.ingest.ratelog import RateLimitedLog
from backend.ingest.verify import PAIR, usable_public_key, verify_pairs
from backend.storage import I64_MAX, QuarantineRow, ReadingRow, Storage, StorageError
from gridtokenx.batch import (
    MAX_MESSAGE_BYTES,
    MAX_READINGS,
    Ack,
    AckResult,
    AckStatus,
    BatchEntry,
    BatchFormatError,
    decode_batch,
    encode_batch_entries,
    entry_prefix,
    join_entry,
    message_digest,
)
from gridtokenx.reading import READING_LEN, Flags, Reading, ReadingFormatError, decode

__all__ = ["Ingest", "IngestStats", "Prepared"]

log = logging.getLogger(__name__)

# What of a refused message is kept when it is too big to keep whole.
QUARANTINE_PAYLOAD_MAX = 64 * 1024


@dataclass
class IngestStats:
    messages: int = 0
    malformed_messages: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)  # readings, by reason
    quarantined_messages: Counter[str] = field(default_factory=Counter)  # whole messages, by reason

    def metrics(self) -> dict[str, int]:
        """Monotonic counters, named as a /metrics endpoint exposes them (``name{label}``)."""
        out = {
            "ingest_messages_total": self.messages,
            "ingest_readings_stored_total": self.stored,
            "ingest_readings_duplicate_total": self.duplicates,
        }
        for reason, n in self.rejected.items():
            out[f'ingest_readings_rejected_total{{reason="{reason}"}}'] = n
        for reason, n in self.quarantined_messages.items():
            out[f'ingest_messages_quarantined_total{{reason="{reason}"}}'] = n
        return out


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
_MISSING = object()


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
    verdicts: bytes | None = None,
) -> list[_Checked]:
    """Decode, verify and check the claims of each entry: the backend's hot path. Per reading it is
    one dictionary look-up, one unpack, one signature check and one tuple comparison; decode() and
    check_claims() stay the authority for anything unusual — a header not seen before, or any
    mismatch, is re-checked by them for its precise reason. ``verdicts``: the signature checks,
    already made by verification processes (:func:`backend.ingest.verify.verify_pairs`, one byte per
    entry, made from :func:`_pairs`)."""
    out: list[_Checked] = []
    append = out.append
    cache: dict[bytes, _Header] = {} if headers is None else headers
    # The same check as backend.ingest.verify.verifier(), inlined: ed25519-dalek's verify_strict,
    # as strict as the chain's precompile (see that module).
    pk = Pubkey(public_key) if public_key is not None and reason is None else None
    new_signature = Signature
    unpack_tail = _TAIL.unpack_from
    missing = _MISSING
    for i, entry in enumerate(entries):
        if entry.problem is not None:
            append((entry.key, None, entry.problem))
            continue
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
        signature = entry.signature
        if len(signature) != 64 or not (
            verdicts[i] if verdicts is not None else new_signature(signature).verify(pk, data)
        ):
            append((key, None, "bad_signature"))
            continue
        power_w = power if power_present else None
        claims = entry.claims
        c_seq, c_ts, c_imp, c_exp = (
            claims.get("seq"),
            claims.get("timestamp_ms"),
            claims.get("import_wh"),
            claims.get("export_wh"),
        )
        c_power, c_error = claims.get("power_w", missing), claims.get("meter_error")
        # The same verdict as check_claims (equal values of the exact JSON types: 5.0 is not 5, 0 is
        # not false) without building a Reading and a dict. meter_id and clock equal a str only if
        # they are one.
        if (
            (claims.get("meter_id"), c_seq, c_ts, c_imp, c_exp, c_power, claims.get("clock"), c_error)
            != (meter_id, seq, ts, imp, exp, power_w, clock, meter_error)
            or type(c_seq) is not int
            or type(c_ts) is not int
            or type(c_imp) is not int
            or type(c_exp) is not int
            or type(c_error) is not bool
            or (c_power is not None and type(c_power) is not int)
        ):
            append((key, None, "claims_mismatch"))
            continue
        if seq > I64_MAX or ts > I64_MAX or imp > I64_MAX or exp > I64_MAX:
            append((key, None, "out_of_range"))
            continue
        append(
            (
                key,
                ReadingRow(gateway_id, meter_id, seq, ts, imp, exp, power_w, flags, data, entry.signature, received_ms),
                None,
            )
        )
    return out


_NO_PAIR = bytes(PAIR)


def _pairs(entries: Sequence[BatchEntry]) -> bytes:
    """Each entry's (reading, signature) as 124 bytes, zeros for an entry that cannot be one."""
    return b"".join(
        [e.data + e.signature if len(e.data) == READING_LEN and len(e.signature) == 64 else _NO_PAIR for e in entries]
    )


@dataclass(frozen=True)
class Prepared:
    """A judged message, ready to be stored (see :meth:`Ingest.prepare` and :meth:`Ingest.commit`).

    ``results`` has one slot per entry, in batch order: filled for entries already refused, None for
    verified readings, whose fate the database decides: the ``rows`` to insert (the first entry of
    each (meter, seq), with its index) and the ``repeats`` (later entries of a (meter, seq) of this
    message, same bytes or not, with their index)."""

    gateway_id: str
    batch_id: str | None  # None: not a readings batch; its bytes are quarantined whole
    rows: list[tuple[int, ReadingRow]]
    quarantined: list[QuarantineRow]
    results: list[AckResult | None]
    received_ms: int
    digest: bytes = b""
    repeats: list[tuple[int, ReadingRow]] = field(default_factory=list)


def _quarantine_whole(gateway_id: str | None, reason: str, payload: bytes, received_ms: int) -> QuarantineRow:
    return QuarantineRow(gateway_id, reason, payload=payload[:QUARANTINE_PAYLOAD_MAX], received_ms=received_ms)


def _entry_payload(entry: BatchEntry) -> bytes | None:
    """An entry that is not even a reading is kept as its JSON text (ASCII escapes: any string fits)."""
    try:
        return json.dumps(dict(entry.claims), ensure_ascii=True, separators=(",", ":")).encode()[
            :QUARANTINE_PAYLOAD_MAX
        ]
    except (ValueError, TypeError, RecursionError):
        return None


class Ingest:
    def __init__(
        self,
        storage: Storage,
        *,
        verify_threads: int = 1,
        verify_processes: int = 0,
        key_cache_s: float = 30.0,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        max_readings: int = MAX_READINGS,
        on_rejected: Callable[[Sequence[QuarantineRow]], Awaitable[None]] | None = None,
    ) -> None:
        self.storage = storage
        self.stats = IngestStats()
        # Told the readings of each batch that were quarantined, once they are (the live feed's
        # reading_rejected notices). Its failures are logged, never the message's.
        self._on_rejected = on_rejected
        self._threads = max(1, verify_threads)
        self.max_message_bytes = max_message_bytes
        self.max_readings = max_readings
        self._pool = ThreadPoolExecutor(max_workers=verify_threads, thread_name_prefix="verify")
        # Verification processes (the check holds the GIL): the loop thread then only parses, stores
        # and acknowledges. "spawn": forking a process that runs threads is unsafe.
        self._processes = verify_processes
        self._process_pool = self._start_processes() if verify_processes > 0 else None
        self._keys: dict[str, tuple[float, bytes | None, str | None]] = {}
        self._key_cache_s = key_cache_s
        self._headers: dict[bytes, _Header] = {}  # see _judge_header
        self.log = RateLimitedLog(log)

    def _start_processes(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(self._processes, mp_context=multiprocessing.get_context("spawn"))
        for _ in range(self._processes):  # start them now, not on the first message
            pool.submit(verify_pairs, bytes(32), b"")
        return pool

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        if self._process_pool is not None:
            self._process_pool.shutdown(wait=True, cancel_futures=True)

    def metrics(self) -> dict[str, int]:
        out = self.stats.metrics()
        for category, n in self.log.events.items():
            out[f'ingest_events_total{{category="{category}"}}'] = n
        for category, n in self.log.suppressed.items():
            out[f'ingest_log_lines_suppressed_total{{category="{category}"}}'] = n
        return out

    async def _gateway_key(self, gateway_id: str) -> tuple[bytes | None, str | None]:
        """(public key, None) for an active gateway, else (None, reason). Cached briefly, so a gateway
        commissioned while the backend runs is picked up within ``key_cache_s``; unknown and disabled
        gateways for a second only (commissioning should take effect at once), and the cache is
        bounded however many gateway ids senders make up."""
        now = time.monotonic()
        cached = self._keys.get(gateway_id)
        if cached is not None and now - cached[0] < (self._key_cache_s if cached[1] is not None else 1.0):
            return cached[1], cached[2]
        record = await self.storage.gateway(gateway_id)
        if record is None:
            result: tuple[bytes | None, str | None] = (None, "unknown_gateway")
        elif record.status != "active":
            result = (None, "gateway_disabled")
        elif not usable_public_key(record.public_key):  # commissioned before keys were checked
            result = (None, "bad_gateway_key")
        else:
            result = (record.public_key, None)
        if len(self._keys) >= 4096:
            self._keys.clear()
        self._keys[gateway_id] = (now, result[0], result[1])
        return result

    async def handle(self, topic_gateway: str, payload: bytes) -> Ack | None:
        """Process one readings message from ``gridtokenx/v1/<topic_gateway>/readings``."""
        return await self.commit(await self.prepare(topic_gateway, payload))

    async def prepare(self, topic_gateway: str, payload: bytes) -> Prepared:
        """The CPU part: parse and verify. Touches the database only to look up the gateway's key, so
        the receiver can verify the next message while the previous one is being stored. Raises only
        :class:`StorageError`."""
        self.stats.messages += 1
        received_ms = int(time.time() * 1000)
        payload = bytes(payload)
        try:
            return await self._prepare(topic_gateway, payload, received_ms)
        except StorageError:
            raise
        except Exception as exc:  # this message only; see the module docstring
            return self.refuse_message(topic_gateway, payload, "internal_error", exc, received_ms)

    def refuse_message(
        self, gateway_id: str | None, payload: bytes, reason: str, exc: BaseException | None, received_ms: int = 0
    ) -> Prepared:
        """A message that is quarantined whole, and gets no ack."""
        received_ms = received_ms or int(time.time() * 1000)
        self.stats.malformed_messages += 1
        self.stats.quarantined_messages[reason] += 1
        if reason == "internal_error":
            self.log(
                logging.ERROR,
                reason,
                "message from %s could not be judged (%s): quarantined; this is a bug",
                gateway_id,
                type(exc).__name__,
                exc_info=True,
            )
        else:
            self.log(logging.WARNING, reason, "message from %s quarantined (%s): %s", gateway_id, reason, exc)
        return Prepared(
            gateway_id or "", None, [], [_quarantine_whole(gateway_id, reason, payload, received_ms)], [], received_ms
        )

    async def _prepare(self, topic_gateway: str, payload: bytes, received_ms: int) -> Prepared:
        try:
            batch = decode_batch(payload, max_bytes=self.max_message_bytes, max_readings=self.max_readings)
        except BatchFormatError as exc:
            return self.refuse_message(topic_gateway, payload, f"malformed:{exc.code}", exc, received_ms)
        public_key, reason = await self._gateway_key(topic_gateway)
        if batch.gateway_id != topic_gateway:
            public_key, reason = None, "gateway_mismatch"
        checked = await self._check(batch.entries, public_key, reason, topic_gateway, received_ms)

        rows: list[tuple[int, ReadingRow]] = []
        quarantined: list[QuarantineRow] = []
        results: list[AckResult | None] = [None] * len(checked)
        repeats: list[tuple[int, ReadingRow]] = []
        seen: set[tuple[str, int]] = set()
        for i, (entry, (key, good, why)) in enumerate(zip(batch.entries, checked, strict=True)):
            if good is not None:
                if good.key in seen:
                    repeats.append((i, good))  # judged against what the database holds after the insert
                else:
                    seen.add(good.key)
                    rows.append((i, good))
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
                    payload=_entry_payload(entry) if entry.problem else None,
                    received_ms=received_ms,
                )
            )
            results[i] = AckResult(key[0] if key else None, key[1] if key else None, AckStatus.REJECTED, why)
        return Prepared(
            topic_gateway,
            batch.batch_id,
            rows,
            quarantined,
            results,
            received_ms,
            message_digest(payload),
            repeats,
        )

    async def commit(self, prepared: Prepared) -> Ack | None:
        """The database part: store, classify what was already there, quarantine; then the ack
        (None for a message that was not a readings batch at all). Safe to call again after a
        :class:`StorageError`: every write is idempotent or replaces nothing."""
        topic_gateway, received_ms = prepared.gateway_id, prepared.received_ms
        quarantined = list(prepared.quarantined)
        results = list(prepared.results)
        if prepared.batch_id is None:
            await self.storage.quarantine(quarantined)
            return None
        rows = [row for _, row in prepared.rows]
        inserted = await self.storage.insert_readings(rows)
        # What the database holds under each (meter, seq) of this message now decides every entry of
        # it: newly stored, the same bytes already held (a resend, or a repeat within the message),
        # or other bytes (seq_conflict, whichever of them came first).
        others = [r.key for r in rows if r.key not in inserted]
        held = await self.storage.existing_data(topic_gateway, others) if others else {}
        for r in rows:
            if r.key in inserted:
                held[r.key] = r.data
        stored = duplicates = 0
        for i, r in prepared.rows:
            if r.key in inserted:
                results[i] = AckResult(r.meter_id, r.seq, AckStatus.STORED)
                stored += 1
            elif held.get(r.key) == r.data:
                results[i] = AckResult(r.meter_id, r.seq, AckStatus.DUPLICATE)
                duplicates += 1
            else:
                quarantined.append(
                    QuarantineRow(
                        topic_gateway, "seq_conflict", r.meter_id, r.seq, r.data, r.signature, received_ms=received_ms
                    )
                )
                results[i] = AckResult(r.meter_id, r.seq, AckStatus.REJECTED, "seq_conflict")
        for i, r in prepared.repeats:
            if held.get(r.key) == r.data:
                results[i] = AckResult(r.meter_id, r.seq, AckStatus.DUPLICATE)
                duplicates += 1
            else:
                quarantined.append(
                    QuarantineRow(
                        topic_gateway, "seq_conflict", r.meter_id, r.seq, r.data, r.signature, received_ms=received_ms
                    )
                )
                results[i] = AckResult(r.meter_id, r.seq, AckStatus.REJECTED, "seq_conflict")
        await self.storage.quarantine(quarantined)

        self.stats.stored += stored
        self.stats.duplicates += duplicates
        for q in quarantined:
            self.stats.rejected[q.reason] += 1
            self.log(
                logging.ERROR,
                q.reason,
                "gateway %s: reading quarantined (%s), meter %s seq %s",
                topic_gateway,
                q.reason,
                q.meter_id,
                q.seq,
            )
        rejected = [q for q in quarantined if q.meter_id is not None]
        if rejected and self._on_rejected is not None:
            try:
                await self._on_rejected(rejected)
            except Exception:  # a notice is a courtesy: the reading is quarantined and will be acked either way
                log.exception("gateway %s: telling subscribers of %d rejected readings failed", topic_gateway,
                              len(rejected))
        final = tuple(r for r in results if r is not None)
        assert len(final) == len(results), "every entry is answered"
        return Ack(topic_gateway, prepared.batch_id, prepared.digest, final)

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
        if len(entries) < 64:
            return _check_entries(entries, *args)
        loop = asyncio.get_running_loop()
        pool = self._process_pool
        if pool is not None and public_key is not None and reason is None:
            size = -(-len(entries) // self._processes)
            try:
                verdicts = await asyncio.gather(
                    *(
                        loop.run_in_executor(pool, verify_pairs, public_key, _pairs(entries[i : i + size]))
                        for i in range(0, len(entries), size)
                    )
                )
            except BrokenProcessPool:
                # A verification process died (killed, out of memory): start new ones, and check this
                # message in the thread meanwhile — never a verdict about readings from a dead worker.
                self.log(logging.ERROR, "verify_processes", "a verification process died: starting new ones")
                if self._process_pool is pool:
                    pool.shutdown(wait=False, cancel_futures=True)
                    self._process_pool = self._start_processes()
            else:
                return _check_entries(entries, *args, b"".join(verdicts))
        size = -(-len(entries) // self._threads)
        parts = await asyncio.gather(
            *(
                loop.run_in_executor(self._pool, _check_entries, entries[i : i + size], *args)
                for i in range(0, len(entries), size)
            )
        )
        return [c for part in parts for c in part]
