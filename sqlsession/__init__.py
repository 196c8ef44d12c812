"""sqlsession: a Litestar key/value store (sessions, response cache, rate limits) on one SQL table."""

from __future__ import annotations

from ._sealing import parse_encryption_keys
from .errors import StoreError, StoreUnavailableError, TableMissingError
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
    "StoreUnavailableError",
    "TableMissingError",
    "parse_encryption_keys",
    "store_table",
)
