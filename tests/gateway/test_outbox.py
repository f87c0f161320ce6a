"""The SQLite outbox: durable sequence numbers, bounded size, defined recovery. Real SQLite files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway.keys import DeviceKey, generate_key
from gateway.outbox import (
    COUNTER_BITS,
    ROW_BYTES,
    Outbox,
    OutboxFullError,
    OutboxSchemaError,
    OutboxSettings,
    read_epoch,
    write_epoch,
)
from gateway.sample import MeterSample
from gateway.signer import OutboxWriter, SampleBuffer
from gridtokenx.reading import verify


@pytest.fixture
def key(tmp_path: Path) -> DeviceKey:
    return generate_key(tmp_path / "device.key")


def _settings(tmp_path: Path, **kw: object) -> OutboxSettings:
    return OutboxSettings(path=tmp_path / "outbox.db", **kw)  # type: ignore[arg-type]


def _samples(meters: int, rounds: int, start_wh: int = 0) -> list[MeterSample]:
    return [
        MeterSample(
            meter_id=f"m{m}",
            timestamp_ms=1_700_000_000_000 + r,
            import_wh=start_wh + r * 10 + m,
            export_wh=r,
            power_w=100 + m,
        )
        for r in range(rounds)
        for m in range(meters)
    ]


def _delete_database(tmp_path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{tmp_path / 'outbox.db'}{suffix}").unlink(missing_ok=True)


def _moved_aside(tmp_path: Path) -> list[Path]:
    return list(tmp_path.glob("outbox.db.corrupt-*"))


async def _all_rows(outbox: Outbox) -> list:
    return await outbox.fetch_after(0, 10**9)


async def test_sequences_are_gap_free_per_meter_and_continue_after_reopen(tmp_path: Path, key: DeviceKey) -> None:
    epoch_path = tmp_path / "device.key.epoch"
    async with await Outbox.open(_settings(tmp_path), epoch_path) as outbox:
        assert outbox.epoch == 1 and read_epoch(epoch_path) == 1
        assert await outbox.append(_samples(3, 4), key.sign) == 12
    async with await Outbox.open(_settings(tmp_path), epoch_path) as outbox:
        assert outbox.epoch == 1
        await outbox.append(_samples(3, 2), key.sign)
        rows = await _all_rows(outbox)
    for m in ("m0", "m1", "m2"):
        seqs = [r.seq for r in rows if r.meter_id == m]
        assert seqs == [(1 << COUNTER_BITS) | c for c in range(6)]
    for r in rows:
        reading = verify(r.data, r.signature, key.public_key)
        assert (reading.meter_id, reading.seq) == (r.meter_id, r.seq)


async def test_losing_the_database_starts_a_higher_epoch(tmp_path: Path, key: DeviceKey) -> None:
    epoch_path = tmp_path / "device.key.epoch"
    async with await Outbox.open(_settings(tmp_path), epoch_path) as outbox:
        await outbox.append(_samples(1, 5), key.sign)
        before = max(r.seq for r in await _all_rows(outbox))
    _delete_database(tmp_path)
    async with await Outbox.open(_settings(tmp_path), epoch_path) as outbox:
        assert outbox.epoch == 2
        await outbox.append(_samples(1, 1), key.sign)
        (row,) = await _all_rows(outbox)
    assert row.seq == 2 << COUNTER_BITS and row.seq > before


async def test_database_older_than_epoch_file_continues_in_a_fresh_epoch(tmp_path: Path, key: DeviceKey) -> None:
    epoch_path = tmp_path / "e"
    async with await Outbox.open(_settings(tmp_path), epoch_path) as outbox:
        await outbox.append(_samples(1, 3), key.sign)
    write_epoch(epoch_path, 5)  # as if a later database had lived and died since this copy was made
    async with await Outbox.open(_settings(tmp_path), epoch_path) as outbox:
        assert outbox.epoch == 6 and read_epoch(epoch_path) == 6
        assert outbox.next_seq("m0") == 6 << COUNTER_BITS


async def test_lost_epoch_file_is_rewritten_from_the_database(tmp_path: Path, key: DeviceKey) -> None:
    epoch_path = tmp_path / "e"
    async with await Outbox.open(_settings(tmp_path), epoch_path) as outbox:
        await outbox.append(_samples(1, 3), key.sign)
    epoch_path.unlink()
    async with await Outbox.open(_settings(tmp_path), epoch_path) as outbox:
        assert outbox.epoch == 1
        assert outbox.next_seq("m0") == (1 << COUNTER_BITS) | 3
    assert read_epoch(epoch_path) == 1


async def test_corrupt_database_is_moved_aside_salvaged_and_a_new_epoch_starts(
    tmp_path: Path, key: DeviceKey, caplog: pytest.LogCaptureFixture
) -> None:
    epoch_path = tmp_path / "e"
    db = tmp_path / "outbox.db"
    async with await Outbox.open(_settings(tmp_path), epoch_path) as outbox:
        await outbox.append(_samples(2, 300), key.sign)
    # Damage a page in the middle of the file (the first pages hold the schema).
    raw = bytearray(db.read_bytes())
    assert len(raw) > 8 * 4096
    raw[5 * 4096 : 5 * 4096 + 200] = b"\xff" * 200
    db.write_bytes(bytes(raw))
    async with await Outbox.open(_settings(tmp_path), epoch_path) as outbox:
        assert outbox.epoch == 2
        rows = await _all_rows(outbox)
        assert 0 < outbox.salvaged == len(rows) <= 600  # rows on damaged pages are lost, the rest kept
        await outbox.append(_samples(1, 1), key.sign)
        assert outbox.next_seq("m0") == (2 << COUNTER_BITS) | 1
    for r in rows:  # everything salvaged is genuine and from the old epoch
        assert verify(r.data, r.signature, key.public_key).seq >> COUNTER_BITS == 1
    assert _moved_aside(tmp_path)
    assert "failed its integrity check" in caplog.text


async def test_garbage_file_is_recovered_not_a_crash_loop(tmp_path: Path, key: DeviceKey) -> None:
    (tmp_path / "outbox.db").write_bytes(b"this is not a database" * 100)
    for _ in range(2):
        async with await Outbox.open(_settings(tmp_path), tmp_path / "e") as outbox:
            await outbox.append(_samples(1, 1), key.sign)
    assert outbox.epoch == 1  # garbage had no epoch; the file was new


async def test_newer_schema_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    async with await Outbox.open(_settings(tmp_path), tmp_path / "e"):
        pass
    with sqlite3.connect(tmp_path / "outbox.db") as conn:
        conn.execute("UPDATE meta SET value = 99 WHERE key = 'schema_version'")
    with pytest.raises(OutboxSchemaError, match="schema version 99"):
        await Outbox.open(_settings(tmp_path), tmp_path / "e")


async def test_remove_deletes_acknowledged_keys_only(tmp_path: Path, key: DeviceKey) -> None:
    async with await Outbox.open(_settings(tmp_path), tmp_path / "e") as outbox:
        await outbox.append(_samples(2, 3), key.sign)
        rows = await _all_rows(outbox)
        removed = await outbox.remove([(rows[0].meter_id, rows[0].seq), ("nope", 1), (rows[1].meter_id, rows[1].seq)])
        assert removed == 2 and outbox.pending == 4
        assert [r.id for r in await _all_rows(outbox)] == [r.id for r in rows[2:]]
        assert [r.id for r in await outbox.fetch_ids([rows[0].id, rows[3].id])] == [rows[3].id]


async def test_thinning_keeps_each_meters_first_and_latest_and_counts(tmp_path: Path, key: DeviceKey) -> None:
    settings = _settings(tmp_path, max_bytes=256 * 1024)  # capacity 512 readings
    cap = settings.capacity_rows
    buffer = SampleBuffer(100_000)
    async with await Outbox.open(settings, tmp_path / "e") as outbox:
        writer = OutboxWriter(outbox, key.sign, buffer)
        samples = _samples(4, 1000)  # 4000 readings into room for 512
        for s in samples:
            buffer.put(s)
        await writer.flush()
        assert outbox.pending <= cap
        assert outbox.thinned_total == 4000 - outbox.pending
        rows = await _all_rows(outbox)
        for m in range(4):
            mine = sorted((r for r in rows if r.meter_id == f"m{m}"), key=lambda r: r.seq)
            assert mine[0].seq == 1 << COUNTER_BITS  # first kept
            assert mine[-1].seq == (1 << COUNTER_BITS) | 999  # latest kept
            latest = verify(mine[-1].data, mine[-1].signature, key.public_key)
            assert latest.import_wh == 999 * 10 + m  # cumulative total survives
            assert [r.seq for r in mine] == sorted({r.seq for r in mine})
        # Old backlog is sparser than recent backlog.
        m0 = sorted(r.seq & ((1 << COUNTER_BITS) - 1) for r in rows if r.meter_id == "m0")
        assert m0[-1] - m0[-10] < m0[10] - m0[0]
        # The bound holds on disk too: used pages stay within max_bytes.
        assert await outbox.used_bytes() <= settings.max_bytes
        stats = await outbox.stats()
        assert stats.thinned_total == outbox.thinned_total and stats.pending == outbox.pending
    async with await Outbox.open(settings, tmp_path / "e") as outbox:
        assert outbox.thinned_total == 4000 - len(rows)  # persisted


async def test_row_size_estimate_holds_for_long_meter_ids(tmp_path: Path, key: DeviceKey) -> None:
    settings = _settings(tmp_path, max_bytes=4 * 1024 * 1024)
    samples = [
        MeterSample(meter_id=f"meter-{m:010d}", timestamp_ms=r, import_wh=r, export_wh=0, power_w=-5)
        for r in range(400)
        for m in range(25)
    ]
    async with await Outbox.open(settings, tmp_path / "e") as outbox:
        for i in range(0, len(samples), 1000):
            await outbox.append(samples[i : i + 1000], key.sign)
        per_row = await outbox.used_bytes() / outbox.pending
    assert per_row < ROW_BYTES, per_row


async def test_disk_full_is_reported_then_recovered_by_thinning(
    tmp_path: Path, key: DeviceKey, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(tmp_path)
    async with await Outbox.open(settings, tmp_path / "e") as outbox:
        await outbox.append(_samples(2, 500), key.sign)
        await outbox.set_page_limit(await outbox.page_count())  # the "disk" is now full
        with pytest.raises(OutboxFullError, match="full"):
            await outbox.append(_samples(2, 500, start_wh=10_000), key.sign)
        assert outbox.pending == 1000 and outbox.next_seq("m0") == (1 << COUNTER_BITS) | 500  # nothing moved
        buffer = SampleBuffer(10_000)
        writer = OutboxWriter(outbox, key.sign, buffer)
        for s in _samples(2, 200, start_wh=10_000):
            buffer.put(s)
        await writer.flush()
        assert writer.disk_full_events >= 1 and outbox.thinned_total > 0
        rows = await _all_rows(outbox)
        latest = max((r for r in rows if r.meter_id == "m1"), key=lambda r: r.seq)
        assert latest.seq == (1 << COUNTER_BITS) | 699
    assert "full" in caplog.text and "writable again" in caplog.text


def test_sample_buffer_never_blocks_and_drops_the_oldest() -> None:
    buffer = SampleBuffer(5)
    for s in _samples(1, 8):
        buffer.put(s)
    assert len(buffer) == 5 and buffer.dropped == 3
    assert [s.export_wh for s in buffer.take(10)] == [3, 4, 5, 6, 7]


def test_sample_buffer_keeps_every_meters_latest_sample() -> None:
    buffer = SampleBuffer(4)
    rare = MeterSample(meter_id="rare", timestamp_ms=1, import_wh=7, export_wh=0, power_w=None)
    buffer.put(rare)  # polled once an hour: its only sample is the oldest in the buffer
    for s in _samples(1, 10):
        buffer.put(s)
    kept = buffer.take(10)
    assert rare in kept and len(kept) == 4 and buffer.dropped == 7
    assert [s.export_wh for s in kept if s.meter_id == "m0"] == [7, 8, 9]


async def test_a_write_right_after_a_checkpoint_commits(tmp_path: Path, key: DeviceKey) -> None:
    """Regression: a checkpoint's result row left unread kept its statement "in progress" in aiosqlite's
    worker thread, and the very next store failed with "cannot commit transaction - SQL statements in
    progress" (seen once on a full disk, where a checkpoint is followed by a store). Every database call the
    outbox makes between transactions must leave no statement open."""
    async with await Outbox.open(_settings(tmp_path), tmp_path / "e") as outbox:
        await outbox.append(_samples(2, 3), key.sign)
        for _ in range(3):
            await outbox._checkpoint()
            assert await outbox.append(_samples(2, 1), key.sign) == 2
            await outbox._checkpoint()
            rows = await _all_rows(outbox)
            assert await outbox.remove([(rows[0].meter_id, rows[0].seq)]) == 1
        await outbox.thin(2)
        assert await outbox.append(_samples(1, 1), key.sign) == 1
