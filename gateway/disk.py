"""The outbox's share of the filesystem: what it may use, and a reserve for getting out of a full disk.

A full disk must be a state the gateway gets out of. In WAL mode SQLite writes every change -- an
insert, but also a delete or the thinning of old backlog -- to the write-ahead log first, and a
checkpoint then copies pages into the database file, which may have to grow. On a disk that is full to
the last block none of that works: thinning frees nothing, acknowledged readings cannot be deleted, and
the WAL keeps whatever it took. So:

* **The database never grows into the WAL's room.** ``PRAGMA max_page_count`` is set from the free space
  (:meth:`DiskGuard.page_limit`), leaving ``wal_allowance`` bytes for the WAL, so SQLite reports "full"
  while deletes and checkpoints still have room; the outbox then thins its oldest backlog and the freed
  pages are reused. WAL checkpoints keep the log itself small (``wal_autocheckpoint`` and
  ``journal_size_limit`` are set from the same allowance).
* **The WAL keeps its room.** Its file is given blocks for the whole allowance (:meth:`DiskGuard.hold_wal`)
  and checkpoints restart it from its beginning instead of truncating it, so deletes, thinning and the
  next commits reuse blocks the outbox already owns -- even when another program has taken the last free
  block of the filesystem.
* **A reserve file** of ``reserve_bytes`` is kept beside the database. When something else fills the
  disk (logs, another program), the outbox gives the reserve back (:meth:`DiskGuard.release`) to make
  room for a checkpoint that must grow the database file, and takes it again once there is space.

Everything is reported as data (:class:`DiskState`) for the status page and logged once per change.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DiskGuard", "DiskState", "mib"]

log = logging.getLogger(__name__)


def mib(n: float) -> str:
    return f"{n / (1 << 20):.2f} MiB"


@dataclass(frozen=True, slots=True)
class DiskState:
    """The outbox's disk as the status page shows it. ``state``: ``ok``; ``limited`` (the free space,
    not ``max_bytes``, bounds the backlog now); ``full`` (a write failed for want of room: thinning);
    ``no_space`` (the filesystem itself is full: the reserve was given back)."""

    state: str
    free_bytes: int
    total_bytes: int
    database_bytes: int
    wal_bytes: int
    reserve_bytes: int
    page_limit: int | None


class DiskGuard:
    """Free-space accounting for one outbox file. Cheap enough to ask before every commit (a statvfs
    and two stats)."""

    def __init__(self, path: Path, *, reserve_bytes: int, wal_allowance: int) -> None:
        self.path = Path(path)
        self.reserve_path = self.path.with_name(self.path.name + ".reserve")
        self.reserve_bytes = reserve_bytes
        self.wal_allowance = wal_allowance
        self.state = "ok"
        self.page_limit: int | None = None

    # -- measuring -------------------------------------------------------------------------------

    def _size(self, path: Path) -> int:
        try:
            return path.stat().st_size
        except OSError:
            return 0

    def free_and_total(self) -> tuple[int, int]:
        st = os.statvfs(self.path.parent)
        return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize

    def reserve_held(self) -> int:
        return self._size(self.reserve_path)

    def snapshot(self) -> DiskState:
        free, total = self.free_and_total()
        return DiskState(
            state=self.state,
            free_bytes=free,
            total_bytes=total,
            database_bytes=self._size(self.path),
            wal_bytes=self._size(Path(f"{self.path}-wal")),
            reserve_bytes=self.reserve_held(),
            page_limit=self.page_limit,
        )

    def describe(self) -> str:
        s = self.snapshot()
        return (
            f"filesystem of {self.path.parent}: {mib(s.free_bytes)} free of {mib(s.total_bytes)}; database "
            f"{mib(s.database_bytes)}, WAL {mib(s.wal_bytes)}, reserve {mib(s.reserve_bytes)} held"
        )

    def page_limit_for(self, page_size: int) -> int:
        """The most pages the database may have so that, once every change is checkpointed into it,
        the WAL still has ``wal_allowance`` bytes and the reserve its room (held or not: a reserve given
        back must be takeable again): (database file + WAL + free - allowance - reserve not held) / page
        size."""
        free, _ = self.free_and_total()
        missing_reserve = max(0, self.reserve_bytes - self.reserve_held())
        room = (
            self._size(self.path) + self._size(Path(f"{self.path}-wal")) + free - self.wal_allowance - missing_reserve
        )
        return max(1, room // page_size)

    # -- the reserve -----------------------------------------------------------------------------

    def ensure_reserve(self) -> bool:
        """Hold ``reserve_bytes`` in the reserve file, when the disk has room for it and the WAL's
        allowance besides. True when the reserve is held."""
        if self.reserve_bytes <= 0:
            return True
        held = self.reserve_held()
        if held >= self.reserve_bytes:
            return True
        free, _ = self.free_and_total()
        if free - (self.reserve_bytes - held) < self.wal_allowance:
            return False
        try:
            fd = os.open(self.reserve_path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.reserve_bytes)  # real blocks, not a sparse file
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            log.debug("outbox reserve %s not taken: %s", self.reserve_path, exc)
            with contextlib.suppress(OSError):
                if self.reserve_held() < self.reserve_bytes:
                    self.reserve_path.unlink()
            return False
        if held == 0 and self.state == "no_space":
            log.warning("outbox %s: took its %s disk reserve back", self.path, mib(self.reserve_bytes))
        return True

    def hold_wal(self) -> None:
        """Give the WAL file blocks for its whole allowance, so the transactions after a checkpoint (which
        restarts the WAL from its beginning) need no new room on the disk. Zeros after the last valid
        frame are ignored by SQLite, and journal_size_limit (set to the allowance) keeps the file that
        long."""
        wal = Path(f"{self.path}-wal")
        size = self._size(wal)
        if size == 0 or size >= self.wal_allowance:
            return
        free, _ = self.free_and_total()
        if free < self.wal_allowance - size:
            return
        try:
            fd = os.open(wal, os.O_WRONLY)
        except OSError:
            return
        try:
            os.posix_fallocate(fd, 0, self.wal_allowance)
        except OSError as exc:
            log.debug("WAL %s not grown to its allowance: %s", wal, exc)
        finally:
            os.close(fd)

    def release(self) -> int:
        """Give the reserve back to the filesystem; bytes freed."""
        held = self.reserve_held()
        if held:
            with contextlib.suppress(FileNotFoundError):
                self.reserve_path.unlink()
        return held
