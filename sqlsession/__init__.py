"""sqlsession: a Litestar key/value store (sessions, response cache, rate limits) on one SQL table."""

from __future__ import annotations

from .schema import DEFAULT_TABLE_NAME, store_table
from .store import DEFAULT_MAX_VALUE_SIZE, SQLStore, StoreError, TableMissingError

__all__ = (
    "DEFAULT_MAX_VALUE_SIZE",
    "DEFAULT_TABLE_NAME",
    "SQLStore",
    "StoreError",
    "TableMissingError",
    "store_table",
)
