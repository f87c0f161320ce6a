"""D2's lifecycle: each stored reading is STORED → PROCESSING → MINTED (with its transaction) or FAILED.

A reading without a row in ``reading_states`` is STORED (ingest's hot path writes nothing here). The
minting worker (backend/minting/) moves readings along:

- PROCESSING while a settlement carrying it is in flight (``claimed_by`` is the worker's instance id);
- MINTED with ``tx_signature`` (the transaction that settled it, ``settled_by_seq`` = its own seq) and
  ``minted_base_units``; readings a newer settlement covered (counters are cumulative, so settling seq n
  settles everything below it) are MINTED with that transaction and ``settled_by_seq`` = n. A reading the
  chain already held (``reason`` ``already_settled:<error>``) is MINTED without a signature until the
  indexer sees its ``settle`` event and fills it in (:func:`fill_signature`);
- FAILED with ``reason`` (the program's error name, ``chain_unavailable``, ``not_registered`` …),
  ``attempts`` and ``next_attempt_ms``: the retry queue. ``next_attempt_ms`` NULL means given up (maximum
  attempts reached, or a reading flagged METER_ERROR, which is never sent).

``mint_progress`` holds, per (gateway, meter), the highest settled seq and a lease (``claimed_by``,
``claimed_ms``): one worker at a time settles a meter, so two minters never send the same meter's readings
at once, and every state row is written once per outcome (conditional updates, primary keys).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from backend.storage.sql import Sql, now_ms
from gridtokenx.reading import Flags

__all__ = [
    "FailedReading",
    "MeterWork",
    "ReadingState",
    "Settled",
    "StoredReading",
    "candidate_readings",
    "claim_meter",
    "cover_late_readings",
    "fill_signature",
    "list_failed",
    "mark_meter_errors",
    "mark_processing",
    "meters_with_new_readings",
    "reading_state",
    "record_failed",
    "record_minted",
    "release_meter",
    "settled_meters",
    "state_counts",
]

METER_ERROR_FLAG = int(Flags.METER_ERROR)


class ReadingState(enum.StrEnum):
    STORED = "STORED"
    PROCESSING = "PROCESSING"
    MINTED = "MINTED"
    FAILED = "FAILED"


@dataclass(frozen=True)
class MeterWork:
    """A meter with readings above its last settlement."""

    gateway_id: str
    meter_id: str
    settled_seq: int | None
    latest_seq: int


@dataclass(frozen=True)
class StoredReading:
    seq: int
    data: bytes
    signature: bytes
    state: ReadingState
    attempts: int
    next_attempt_ms: int | None


@dataclass(frozen=True)
class Settled:
    """A reading the chain now holds: accepted by ``signature`` (minting ``minted``), or already held
    (``signature`` None, ``note`` says why)."""

    seq: int
    signature: str | None
    minted: int = 0
    baseline: bool = False
    note: str | None = None


@dataclass(frozen=True)
class FailedReading:
    gateway_id: str
    meter_id: str
    seq: int
    reason: str | None
    attempts: int
    next_attempt_ms: int | None
    updated_ms: int


async def meters_with_new_readings(db: Sql, gateway_id: str) -> list[MeterWork]:
    """Every meter of ``gateway_id`` whose newest reading is above its last settlement. The meter ids come
    from a loose scan of the readings' primary key (one index probe per meter, not a scan of every
    reading), the newest seq per meter from the same index."""
    rows = await db.fetch(
        """WITH RECURSIVE m(meter_id) AS (
               SELECT min(meter_id) FROM readings WHERE gateway_id = $1
               UNION ALL
               SELECT (SELECT min(r.meter_id) FROM readings r WHERE r.gateway_id = $1 AND r.meter_id > m.meter_id)
               FROM m WHERE m.meter_id IS NOT NULL
           )
           SELECT m.meter_id, p.settled_seq,
                  (SELECT max(r.seq) FROM readings r WHERE r.gateway_id = $1 AND r.meter_id = m.meter_id)
           FROM m LEFT JOIN mint_progress p ON p.gateway_id = $1 AND p.meter_id = m.meter_id
           WHERE m.meter_id IS NOT NULL ORDER BY m.meter_id""",
        gateway_id,
    )
    return [MeterWork(gateway_id, r[0], r[1], int(r[2])) for r in rows if r[1] is None or int(r[2]) > int(r[1])]


_CANDIDATE = (
    "SELECT r.seq, r.data, r.signature, COALESCE(s.state, 'STORED'), COALESCE(s.attempts, 0), s.next_attempt_ms "
    "FROM readings r LEFT JOIN reading_states s ON s.gateway_id = r.gateway_id AND s.meter_id = r.meter_id "
    "AND s.seq = r.seq WHERE r.gateway_id = $1 AND r.meter_id = $2 AND r.seq > $3 "
    f"AND (r.flags & {METER_ERROR_FLAG}) = 0 ORDER BY r.seq "
)


async def candidate_readings(db: Sql, gateway_id: str, meter_id: str,
                             above: int | None) -> tuple[StoredReading, StoredReading] | None:
    """(earliest, latest) good readings (no METER_ERROR flag) above seq ``above``; None if there is none.
    They are the same reading when there is one."""
    floor = -1 if above is None else above
    latest = await db.fetch(_CANDIDATE + "DESC LIMIT 1", gateway_id, meter_id, floor)
    if not latest:
        return None
    earliest = await db.fetch(_CANDIDATE + "LIMIT 1", gateway_id, meter_id, floor)
    return _stored(earliest[0]), _stored(latest[0])


def _stored(r: Sequence[Any]) -> StoredReading:
    seq, data, signature, state, attempts, next_ms = r
    return StoredReading(int(seq), bytes(data), bytes(signature), ReadingState(state), int(attempts),
                         None if next_ms is None else int(next_ms))


async def mark_meter_errors(db: Sql, gateway_id: str, meter_id: str, above: int) -> int:
    """Readings flagged METER_ERROR above seq ``above`` (newer than the reading being settled) become FAILED
    ``meter_error`` for good: they are never sent. Returns how many there are (newly marked or not)."""
    now = now_ms()
    await db.execute(
        "INSERT INTO reading_states (gateway_id, meter_id, seq, state, reason, updated_ms) "
        "SELECT gateway_id, meter_id, seq, 'FAILED', 'meter_error', $4 FROM readings "
        f"WHERE gateway_id = $1 AND meter_id = $2 AND seq > $3 AND (flags & {METER_ERROR_FLAG}) <> 0 "
        "ON CONFLICT (gateway_id, meter_id, seq) DO NOTHING",
        gateway_id, meter_id, above, now,
    )
    rows = await db.fetch(
        f"SELECT count(*) FROM readings WHERE gateway_id = $1 AND meter_id = $2 AND seq > $3 "
        f"AND (flags & {METER_ERROR_FLAG}) <> 0",
        gateway_id, meter_id, above,
    )
    return int(rows[0][0])


async def claim_meter(db: Sql, gateway_id: str, meter_id: str, worker: str, *, lease_ms: int) -> bool:
    """Take the meter's lease for ``worker``: True if it was free, already this worker's, or expired."""
    now = now_ms()
    rows = await db.fetch(
        "INSERT INTO mint_progress (gateway_id, meter_id, settled_seq, claimed_by, claimed_ms, updated_ms) "
        "VALUES ($1, $2, NULL, $3, $4, $4) "
        "ON CONFLICT (gateway_id, meter_id) DO UPDATE SET claimed_by = excluded.claimed_by, "
        "claimed_ms = excluded.claimed_ms "
        "WHERE mint_progress.claimed_by IS NULL OR mint_progress.claimed_by = excluded.claimed_by "
        "OR mint_progress.claimed_ms < $5 RETURNING settled_seq",
        gateway_id, meter_id, worker, now, now - lease_ms,
    )
    return bool(rows)


async def release_meter(db: Sql, gateway_id: str, meter_id: str, worker: str) -> None:
    await db.execute(
        "UPDATE mint_progress SET claimed_by = NULL, claimed_ms = NULL "
        "WHERE gateway_id = $1 AND meter_id = $2 AND claimed_by = $3",
        gateway_id, meter_id, worker,
    )


async def mark_processing(db: Sql, gateway_id: str, meter_id: str, seqs: Sequence[int], worker: str) -> None:
    """These readings are in a settlement being sent (STORED or FAILED rows become PROCESSING)."""
    now = now_ms()
    await db.executemany(
        "INSERT INTO reading_states (gateway_id, meter_id, seq, state, claimed_by, claimed_ms, updated_ms) "
        "VALUES ($1, $2, $3, 'PROCESSING', $4, $5, $5) "
        "ON CONFLICT (gateway_id, meter_id, seq) DO UPDATE SET state = 'PROCESSING', "
        "claimed_by = excluded.claimed_by, claimed_ms = excluded.claimed_ms, updated_ms = excluded.updated_ms "
        "WHERE reading_states.state <> 'MINTED'",
        [(gateway_id, meter_id, seq, worker, now) for seq in seqs],
    )


async def record_minted(db: Sql, gateway_id: str, meter_id: str, settled: Sequence[Settled], worker: str) -> bool:
    """The chain holds these readings (in seq order; the last is the newest): each becomes MINTED, every
    older reading above the previous settlement is MINTED by the settlement that covered it, the meter's
    progress moves to the newest seq and its lease is released. Call inside a transaction. False (and
    nothing written) if ``worker`` no longer holds the meter's lease — another worker took over."""
    if not settled:
        return True
    now = now_ms()
    held = await db.fetch(
        "SELECT settled_seq FROM mint_progress WHERE gateway_id = $1 AND meter_id = $2 AND claimed_by = $3",
        gateway_id, meter_id, worker,
    )
    if not held:
        return False
    previous = -1 if held[0][0] is None else int(held[0][0])
    floor = previous
    for s in sorted(settled, key=lambda s: s.seq):
        if s.seq <= floor:
            continue
        await db.execute(
            "INSERT INTO reading_states (gateway_id, meter_id, seq, state, tx_signature, settled_by_seq, "
            "minted_base_units, baseline, reason, attempts, updated_ms) "
            "VALUES ($1, $2, $3, 'MINTED', $4, $3, $5, $6, $7, 0, $8) "
            "ON CONFLICT (gateway_id, meter_id, seq) DO UPDATE SET state = 'MINTED', "
            "tx_signature = excluded.tx_signature, settled_by_seq = excluded.settled_by_seq, "
            "minted_base_units = excluded.minted_base_units, baseline = excluded.baseline, "
            "reason = excluded.reason, next_attempt_ms = NULL, claimed_by = NULL, claimed_ms = NULL, "
            "updated_ms = excluded.updated_ms WHERE reading_states.state <> 'MINTED'",
            gateway_id, meter_id, s.seq, s.signature, s.minted, s.baseline, s.note, now,
        )
        # Everything between the previous settlement and this one is covered by it.
        await db.execute(
            "UPDATE reading_states SET state = 'MINTED', tx_signature = $5, settled_by_seq = $4, "
            "next_attempt_ms = NULL, claimed_by = NULL, claimed_ms = NULL, updated_ms = $6 "
            "WHERE gateway_id = $1 AND meter_id = $2 AND seq > $3 AND seq < $4 AND state <> 'MINTED'",
            gateway_id, meter_id, floor, s.seq, s.signature, now,
        )
        await db.execute(
            "INSERT INTO reading_states (gateway_id, meter_id, seq, state, tx_signature, settled_by_seq, updated_ms) "
            "SELECT gateway_id, meter_id, seq, 'MINTED', $5, $4, $6 FROM readings "
            "WHERE gateway_id = $1 AND meter_id = $2 AND seq > $3 AND seq < $4 "
            "ON CONFLICT (gateway_id, meter_id, seq) DO NOTHING",
            gateway_id, meter_id, floor, s.seq, s.signature, now,
        )
        floor = s.seq
    newest = max(settled, key=lambda s: s.seq)
    await db.execute(
        "UPDATE mint_progress SET settled_seq = $3, tx_signature = $4, claimed_by = NULL, claimed_ms = NULL, "
        "updated_ms = $5 WHERE gateway_id = $1 AND meter_id = $2",
        gateway_id, meter_id, max(floor, previous), newest.signature, now,
    )
    return True


async def settled_meters(db: Sql) -> list[tuple[str, str, int]]:
    """(gateway, meter, settled seq) of every meter settled at least once."""
    rows = await db.fetch("SELECT gateway_id, meter_id, settled_seq FROM mint_progress WHERE settled_seq IS NOT NULL")
    return [(r[0], r[1], int(r[2])) for r in rows]


async def cover_late_readings(db: Sql, gateway_id: str, meter_id: str, settled_seq: int, window: int) -> int:
    """Readings stored after a newer reading of their meter was settled (delivered out of order, e.g. a
    batch resent after an ack timeout) are covered by the first settlement above them: MINTED by its
    transaction. Looks at the ``window`` sequence numbers below ``settled_seq``. Returns how many."""
    rows = await db.fetch(
        "INSERT INTO reading_states (gateway_id, meter_id, seq, state, tx_signature, settled_by_seq, updated_ms) "
        "SELECT r.gateway_id, r.meter_id, r.seq, 'MINTED', s.tx_signature, s.seq, $5 FROM readings r "
        "JOIN reading_states s ON s.gateway_id = r.gateway_id AND s.meter_id = r.meter_id AND s.seq = ("
        "  SELECT min(t.seq) FROM reading_states t WHERE t.gateway_id = r.gateway_id AND t.meter_id = r.meter_id "
        "  AND t.seq > r.seq AND t.state = 'MINTED' AND t.settled_by_seq = t.seq) "
        "WHERE r.gateway_id = $1 AND r.meter_id = $2 AND r.seq < $3 AND r.seq >= $4 "
        "AND NOT EXISTS (SELECT 1 FROM reading_states x WHERE x.gateway_id = r.gateway_id "
        "                AND x.meter_id = r.meter_id AND x.seq = r.seq) "
        "ON CONFLICT (gateway_id, meter_id, seq) DO NOTHING RETURNING seq",
        gateway_id, meter_id, settled_seq, settled_seq - window, now_ms(),
    )
    return len(rows)


async def record_failed(db: Sql, gateway_id: str, meter_id: str, seqs: Sequence[int], reason: str, *,
                        retry_at_ms: int | None, count_attempt: bool = True) -> None:
    """These readings failed with ``reason``: FAILED, retried from ``retry_at_ms`` (None: given up).
    ``count_attempt`` False for waits that are not the reading's fault (chain outage, meter not yet
    registered), which must not exhaust its attempts."""
    now = now_ms()
    bump = 1 if count_attempt else 0
    await db.executemany(
        "INSERT INTO reading_states (gateway_id, meter_id, seq, state, reason, attempts, next_attempt_ms, updated_ms) "
        "VALUES ($1, $2, $3, 'FAILED', $4, $5, $6, $7) "
        "ON CONFLICT (gateway_id, meter_id, seq) DO UPDATE SET state = 'FAILED', reason = excluded.reason, "
        "attempts = reading_states.attempts + $5, next_attempt_ms = excluded.next_attempt_ms, claimed_by = NULL, "
        "claimed_ms = NULL, updated_ms = excluded.updated_ms WHERE reading_states.state <> 'MINTED'",
        [(gateway_id, meter_id, seq, reason, bump, retry_at_ms, now) for seq in seqs],
    )


async def fill_signature(db: Sql, meter_id: str, seq: int, signature: str) -> None:
    """The indexer saw the ``settle`` event of (meter, seq): readings recorded MINTED without a signature
    (the chain already held them when this backend tried) get the transaction that settled them."""
    await db.execute(
        "UPDATE reading_states SET tx_signature = $3 "
        "WHERE meter_id = $1 AND settled_by_seq = $2 AND state = 'MINTED' AND tx_signature IS NULL",
        meter_id, seq, signature,
    )


async def reading_state(db: Sql, gateway_id: str, meter_id: str, seq: int) -> tuple[ReadingState, str | None,
                                                                                     str | None]:
    """(state, transaction signature, reason) of one stored reading."""
    rows = await db.fetch(
        "SELECT state, tx_signature, reason FROM reading_states WHERE gateway_id = $1 AND meter_id = $2 AND seq = $3",
        gateway_id, meter_id, seq,
    )
    if not rows:
        return ReadingState.STORED, None, None
    return ReadingState(rows[0][0]), rows[0][1], rows[0][2]


async def state_counts(db: Sql) -> dict[str, int]:
    """Readings per state; FAILED split into ``FAILED retrying`` and ``FAILED given up``."""
    counts = {state.value: 0 for state in ReadingState}
    total = int((await db.fetch("SELECT count(*) FROM readings"))[0][0])
    for state, retrying, n in await db.fetch(
        "SELECT state, next_attempt_ms IS NOT NULL, count(*) FROM reading_states GROUP BY 1, 2"
    ):
        counts[state] += int(n)
        if state == ReadingState.FAILED:
            key = "FAILED retrying" if retrying else "FAILED given up"
            counts[key] = counts.get(key, 0) + int(n)
    counts[ReadingState.STORED] = total - sum(counts[s.value] for s in ReadingState if s is not ReadingState.STORED)
    return counts


async def list_failed(db: Sql, *, limit: int = 100, meter_id: str | None = None) -> list[FailedReading]:
    rows = await db.fetch(
        "SELECT gateway_id, meter_id, seq, reason, attempts, next_attempt_ms, updated_ms FROM reading_states "
        "WHERE state = 'FAILED' AND (CAST($1 AS TEXT) IS NULL OR meter_id = $1) "
        "ORDER BY updated_ms DESC LIMIT $2",
        meter_id, limit,
    )
    return [FailedReading(*r) for r in rows]
