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
A storage failure raises :class:`~backend.storage.StorageError` and produces no ack: the gateway resends.

Signature checks run in worker threads: libsodium releases the GIL, so several cores verify at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from backend.storage import I64_MAX, QuarantineRow, ReadingRow, Storage
from gridtokenx.batch import (
    Ack,
    AckResult,
    AckStatus,
    BatchEntry,
    BatchFormatError,
    check_claims,
    decode_batch,
    encode_batch_entries,
    entry_prefix,
    join_entry,
)
from gridtokenx.reading import Reading, ReadingFormatError, decode

__all__ = ["Ingest", "IngestStats", "Prepared"]

log = logging.getLogger(__name__)


@dataclass
class IngestStats:
    messages: int = 0
    malformed_messages: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)


# (key or None, reading or None, reason or None) per entry
_Checked = tuple[tuple[str, int] | None, Reading | None, str | None]


def _check_entries(entries: Sequence[BatchEntry], public_key: bytes | None, reason: str | None) -> list[_Checked]:
    out: list[_Checked] = []
    # One VerifyKey per batch, and each reading decoded once: this loop is the backend's hot path.
    verify_key = VerifyKey(public_key) if public_key is not None and reason is None else None
    for entry in entries:
        try:
            reading = decode(entry.data)
        except ReadingFormatError as exc:
            out.append((entry.key, None, f"format:{exc.code}"))
            continue
        key = (reading.meter_id, reading.seq)
        if verify_key is None:
            out.append((key, None, reason or "unknown_gateway"))
            continue
        try:
            verify_key.verify(entry.data, entry.signature)
        except (BadSignatureError, ValueError):
            out.append((key, None, "bad_signature"))
            continue
        try:
            check_claims(entry, reading)
        except BatchFormatError:
            out.append((key, None, "claims_mismatch"))
            continue
        if max(reading.seq, reading.import_wh, reading.export_wh, reading.timestamp_ms) > I64_MAX:
            out.append((key, None, "out_of_range"))
            continue
        out.append((key, reading, None))
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
        checked = await self._check(batch.entries, public_key, reason)

        rows: list[ReadingRow] = []
        quarantined: list[QuarantineRow] = []
        results: list[AckResult] = []
        for entry, (key, reading, why) in zip(batch.entries, checked, strict=True):
            if reading is not None:
                rows.append(
                    ReadingRow(
                        topic_gateway,
                        reading.meter_id,
                        reading.seq,
                        reading.timestamp_ms,
                        reading.import_wh,
                        reading.export_wh,
                        reading.power_w,
                        int(reading.flags),
                        entry.data,
                        entry.signature,
                        received_ms,
                    )
                )
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
        self, entries: Sequence[BatchEntry], public_key: bytes | None, reason: str | None
    ) -> list[_Checked]:
        if len(entries) < 64 or self._threads <= 1:
            return _check_entries(entries, public_key, reason)
        loop = asyncio.get_running_loop()
        size = -(-len(entries) // self._threads)
        parts = await asyncio.gather(
            *(
                loop.run_in_executor(self._pool, _check_entries, entries[i : i + size], public_key, reason)
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
