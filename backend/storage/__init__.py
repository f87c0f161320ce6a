"""The backend's store of record: schema, migrations and the SQL for every data store.

PostgreSQL in production, SQLite as the embedded default — one interface, one set of statements
(:mod:`backend.storage.database`). SQL lives under this package and nowhere else.
"""

from backend.storage.database import (
    I64_MAX,
    SCHEMA_VERSION,
    GatewayRecord,
    QuarantineRow,
    ReadingRow,
    Storage,
    StorageConfigError,
    StorageError,
    open_storage,
)

__all__ = [
    "I64_MAX",
    "SCHEMA_VERSION",
    "GatewayRecord",
    "QuarantineRow",
    "ReadingRow",
    "Storage",
    "StorageConfigError",
    "StorageError",
    "open_storage",
]
