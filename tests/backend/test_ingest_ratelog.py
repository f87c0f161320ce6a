"""A flood of refusals is counted in full but logged rarely: one line per reason and interval, and the
counts are there for metrics. The table of reasons stays bounded whatever senders make up."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from backend.ingest.pipeline import Ingest
from backend.ingest.ratelog import RateLimitedLog
from backend.storage import open_storage


def test_a_flood_is_counted_and_logged_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.ratelog")
    rl = RateLimitedLog(logger, interval_s=3600)
    with caplog.at_level(logging.INFO, logger="test.ratelog"):
        for i in range(10_000):
            rl(logging.ERROR, "unknown_gateway", "gateway %s unknown", f"gw-{i}")
            rl(logging.WARNING, "topic", "odd topic %d", i)
    assert len(caplog.records) == 2 and rl.lines == 2
    assert rl.events == {"unknown_gateway": 10_000, "topic": 10_000}
    assert rl.suppressed == {"unknown_gateway": 9_999, "topic": 9_999}
    rl.interval_s = 0  # the next line says how many were not written
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="test.ratelog"):
        rl(logging.ERROR, "topic", "odd topic %d", 1)
    assert "9999 more of topic" in caplog.records[0].getMessage()


def test_categories_are_bounded() -> None:
    rl = RateLimitedLog(logging.getLogger("test.ratelog.bound"), interval_s=3600)
    for i in range(1000):
        rl(logging.DEBUG, f"cat-{i}", "x")
    assert len(rl.events) == 257 and rl.events["other"] == 1000 - 256


async def test_ingest_metrics_count_what_was_refused(tmp_path: Path) -> None:
    async with await open_storage(f"sqlite:///{tmp_path}/b.db") as storage:
        ingest = Ingest(storage)
        for payload in (b"[" * 100_000, b"{", b'{"v":2}'):
            assert await ingest.handle("gw-x", payload) is None
        metrics = ingest.metrics()
        ingest.close()
        assert metrics["ingest_messages_total"] == 3
        assert metrics['ingest_messages_quarantined_total{reason="malformed:shape"}'] == 1
        assert metrics['ingest_messages_quarantined_total{reason="malformed:json"}'] == 1
        assert metrics['ingest_messages_quarantined_total{reason="malformed:version"}'] == 1
        assert await storage.quarantine_counts() == {"malformed:shape": 1, "malformed:json": 1, "malformed:version": 1}
