"""What every repository module and the schema need, and nothing else: the :class:`Sql` interface a storage
or one of its transactions offers, :class:`StorageError`, and the clock backend times are written with.

Kept apart from :mod:`backend.storage.database` (the two dialect adapters) so that the schema and the
repositories depend on this small interface, not on the adapters: ``database`` imports ``schema`` to
upgrade a database it opens, and nothing here imports back.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

__all__ = ["I64_MAX", "Sql", "StorageConfigError", "StorageError", "now_ms", "placeholders"]

I64_MAX = (1 << 63) - 1


class Sql(Protocol):
    """What repository functions need: a storage, or one transaction of it (``Storage.transaction()``).
    Statements use ``$n`` placeholders on both dialects; ``dialect`` is ``postgresql`` or ``sqlite``."""

    dialect: str

    async def execute(self, sql: str, *args: Any) -> None: ...

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]: ...


class StorageError(Exception):
    """The database is unreachable or refused an operation; the message names it.

    ``transient``: retrying may help (connection lost, server restarting, database locked). A
    non-transient error (the data itself was refused) will fail the same way every time."""

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


class StorageConfigError(StorageError):
    """The configuration names no database this backend can use (e.g. an unsupported URL scheme)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=False)


def now_ms() -> int:
    """Backend times (``*_ms`` columns): milliseconds since the epoch."""
    return int(time.time() * 1000)


def placeholders(args: list[Any], values: Iterable[Any]) -> str:
    """Append ``values`` to a statement's ``args``; return their ``$n`` marks for ``IN (...)``."""
    marks = []
    for value in values:
        args.append(value)
        marks.append(f"${len(args)}")
    return ", ".join(marks)
