"""The backend's store of record: schema, migrations and the SQL for every data store.

PostgreSQL in production, SQLite as the embedded default — one interface, one set of statements
(:mod:`backend.storage.database`). SQL lives under this package and nowhere else: one repository module
per data store, each a set of functions over :class:`Sql` (a storage, or one of its transactions):

- :mod:`~backend.storage.users`, :mod:`~backend.storage.meters` — D1 users and the meter registry;
- ingest's readings (:class:`Storage`) and :mod:`~backend.storage.reading_states` — D2 and its lifecycle;
- :mod:`~backend.storage.balances` — D3 token ledger mirror (wallet balances, escrow vaults);
- :mod:`~backend.storage.orders` — D4; :mod:`~backend.storage.trades` — D5;
- :mod:`~backend.storage.certificates` — D6; :mod:`~backend.storage.payments` — D7;
- :mod:`~backend.storage.events` — the indexer's events, apply-once gate and cursor;
- :mod:`~backend.storage.nonces` — the api's single-use sign-in nonces (without Redis);
- :mod:`~backend.storage.certificate_requests` — the certificate index each prepared request holds.

:mod:`~backend.storage.schema` holds the versions and their in-place migrations; :mod:`~backend.storage.sql`
the interface all of them are written against.
"""

from backend.storage.database import (
    GatewayRecord,
    QuarantineRow,
    ReadingRow,
    Storage,
    open_storage,
)
from backend.storage.schema import SCHEMA_VERSION
from backend.storage.sql import I64_MAX, Sql, StorageConfigError, StorageError

__all__ = [
    "I64_MAX",
    "SCHEMA_VERSION",
    "GatewayRecord",
    "QuarantineRow",
    "ReadingRow",
    "Sql",
    "Storage",
    "StorageConfigError",
    "StorageError",
    "open_storage",
]
