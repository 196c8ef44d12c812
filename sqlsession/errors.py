"""The exceptions a store raises; catch these (also importable from ``sqlsession``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .schema import DEFAULT_TABLE_NAME

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

__all__ = ("StoreError", "StoreUnavailableError", "TableMissingError")


class StoreError(Exception):
    """An operation of the store failed in the database, its driver or the engine's pool
    (the driver's or pool's error is the ``__cause__``)."""


class StoreUnavailableError(StoreError):
    """The database could not be reached: connection refused or lost, server down or starting,
    no pooled connection free within ``pool_timeout``, SQLite's file unavailable; or the store's
    circuit breaker is holding calls back after repeated such failures. A store with
    ``on_error="miss"`` answers these as misses instead of raising."""


class TableMissingError(StoreError):
    """The store's table does not exist: the migrations have not been run (the message says
    the command that creates it)."""


def upgrade_hint(url: URL, table_name: str) -> str:
    """The command that creates or upgrades the table, password masked (for error messages)."""
    shown = url.render_as_string(hide_password=True)
    table = "" if table_name == DEFAULT_TABLE_NAME else f" --table {table_name}"
    return f"`python -m sqlsession upgrade --url '{shown}'{table}`"
