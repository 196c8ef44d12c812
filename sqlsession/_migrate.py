"""The table's life cycle with the bundled Alembic revisions: upgrade, downgrade, current, check.

Used by ``python -m sqlsession upgrade|downgrade|current``, the ``litestar sqlsession`` group and
the plugin's start-up check. Alembic runs on a connection handed to sqlsession's own environment
(``sqlsession/_alembic/env.py``), which records the revision in ``sqlsession_version_<table>``.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, Table, false, func, inspect, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from . import _dialects
from .errors import StoreError, TableMissingError, upgrade_hint
from .schema import HEAD_REVISION, REVISION_PREFIX, store_table, version_table_name

SCRIPT_LOCATION = "sqlsession:_alembic"
VERSION_LOCATIONS = "sqlsession:migrations"
APP_VERSION_TABLE = "alembic_version"  # where an app's own Alembic environment records ours


@dataclass(frozen=True)
class TableState:
    """Whether the table exists, and the sqlsession revisions recorded for it."""

    exists: bool
    revisions: tuple[str, ...]
    own: bool = False
    """Whether a revision is recorded in sqlsession's own version table (so its downgrade applies)."""

    def describe(self) -> str:
        if not self.exists:
            return "no table"
        if not self.revisions:
            return "table present, no sqlsession revision recorded (made without the migrations)"
        return ", ".join(f"{rev} (head)" if rev == HEAD_REVISION else rev for rev in self.revisions)


def alembic_config(table_name: str, connection: Connection) -> Config:
    """An Alembic configuration of the bundled revisions, running on ``connection``."""
    config = Config(cmd_opts=argparse.Namespace(x=[f"table={table_name}"]))
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.set_main_option("version_locations", VERSION_LOCATIONS)
    config.set_main_option("path_separator", "space")
    config.attributes["connection"] = connection
    return config


@asynccontextmanager
async def _transactional(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection of ``engine`` that runs DDL in a transaction (also on an autocommit engine)."""
    async with engine.connect() as conn:
        # the level the database starts connections at: not autocommit, whatever the engine says
        await conn.execution_options(isolation_level=conn.default_isolation_level)
        yield conn
        await conn.commit()


async def upgrade(engine: AsyncEngine, table_name: str) -> None:
    """Create the table, or bring it to the newest revision."""
    async with _transactional(engine) as conn:
        await conn.run_sync(lambda sync: command.upgrade(alembic_config(table_name, sync), "sqlsession@head"))


def _downgrade(sync: Connection, table_name: str) -> None:
    command.downgrade(alembic_config(table_name, sync), "sqlsession@base")
    versions = Table(version_table_name(table_name), MetaData())
    if inspect(sync).has_table(versions.name):
        versions = Table(versions.name, MetaData(), autoload_with=sync)
        if sync.execute(select(func.count()).select_from(versions)).scalar_one() == 0:
            versions.drop(sync)


async def downgrade(engine: AsyncEngine, table_name: str) -> None:
    """Drop the table, its index and its (then empty) version table."""
    async with _transactional(engine) as conn:
        await conn.run_sync(_downgrade, table_name)


def _state(sync: Connection, table_name: str) -> TableState:
    inspector = inspect(sync)
    found: list[str] = []
    own = False
    for versions in (version_table_name(table_name), APP_VERSION_TABLE):
        if inspector.has_table(versions):
            context = MigrationContext.configure(sync, opts={"version_table": versions})
            revisions = [rev for rev in context.get_current_heads() if rev.startswith(REVISION_PREFIX)]
            own = own or (bool(revisions) and versions != APP_VERSION_TABLE)
            found += revisions
    return TableState(inspector.has_table(table_name), tuple(dict.fromkeys(found)), own)


async def state(engine: AsyncEngine, table_name: str) -> TableState:
    """Whether the table exists and which revisions are recorded for it."""
    async with engine.connect() as conn:
        return await conn.run_sync(_state, table_name)


def _select_nothing(sync: Connection, table_name: str) -> None:
    table = store_table(MetaData(), table_name)
    sync.execute(select(*table.c).where(false()))


def _one_line(error: BaseException) -> str:
    cause = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    return f"{type(cause).__name__}: {' '.join(str(cause).split())}"


async def check(engine: AsyncEngine, table_name: str) -> None:
    """Raise unless the database answers and the table exists, at the revision this version of
    sqlsession expects, with the columns the store uses."""
    hint = upgrade_hint(engine.url, table_name)
    url = engine.url.render_as_string(hide_password=True)
    try:
        async with engine.connect() as conn:
            found = await conn.run_sync(_state, table_name)
            if found.exists:
                try:
                    await conn.run_sync(_select_nothing, table_name)
                except DBAPIError as error:  # a table of that name, made by something else
                    if _dialects.is_unreachable(error.orig or error):
                        raise
                    raise StoreError(
                        f"the table {table_name!r} at {url} does not have sqlsession's columns "
                        f"({_one_line(error)}): choose another table_name, or drop that table and run {hint}"
                    ) from None
    except (DBAPIError, OSError, asyncio.TimeoutError) as error:  # asyncio's: Python 3.10 has its own
        raise StoreError(f"the database at {url} does not answer: {_one_line(error)}") from None
    if not found.exists:
        raise TableMissingError(f"the table {table_name!r} does not exist: run {hint}")
    if any(rev != HEAD_REVISION for rev in found.revisions):
        raise StoreError(
            f"the table {table_name!r} is at revision {', '.join(found.revisions)}, and this version of "
            f"sqlsession expects {HEAD_REVISION}: run {hint} (or install the sqlsession that made it)"
        )
