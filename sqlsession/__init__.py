"""sqlsession: a Litestar key/value store (sessions, response cache, rate limits) on one SQL table."""

from __future__ import annotations

from .errors import StoreError, TableMissingError
from .plugin import SQLStorePlugin
from .schema import DEFAULT_TABLE_NAME, store_table
from .store import (
    DEFAULT_MAX_VALUE_SIZE,
    DELETE_BATCH_SIZE,
    NamespaceStats,
    SQLStore,
    StoreStats,
)

__all__ = (
    "DEFAULT_MAX_VALUE_SIZE",
    "DEFAULT_TABLE_NAME",
    "DELETE_BATCH_SIZE",
    "NamespaceStats",
    "SQLStore",
    "SQLStorePlugin",
    "StoreError",
    "StoreStats",
    "TableMissingError",
    "store_table",
)
