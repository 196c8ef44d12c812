"""The exceptions a store raises; catch these (also importable from ``sqlsession``)."""

from __future__ import annotations

__all__ = ("StoreError", "TableMissingError")


class StoreError(Exception):
    """An operation of the store failed in the database, its driver or the engine's pool
    (the driver's or pool's error is the ``__cause__``)."""


class TableMissingError(StoreError):
    """The store's table does not exist: the migrations have not been run."""
