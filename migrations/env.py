"""Alembic environment of sqlsession: wires the URL, the table name and the target metadata.

URL: ``SQLSESSION_URL``, else ``sqlalchemy.url`` of alembic.ini. Async URLs run through an
async engine; a URL without a driver (``postgresql://...``) gets sqlsession's async default;
a sync driver URL (``sqlite:///x.db``, ``postgresql+psycopg://...``) runs synchronously.
Table: ``alembic -x table=NAME``, else ``SQLSESSION_TABLE``, else ``litestar_store``.
"""

from __future__ import annotations

import asyncio
import os
from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy import MetaData, create_engine, pool
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from sqlsession._dialects import async_url
from sqlsession.schema import DEFAULT_TABLE_NAME, bounded_name, store_table

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)
table_name = (
    context.get_x_argument(as_dictionary=True).get("table")
    or os.environ.get("SQLSESSION_TABLE")
    or DEFAULT_TABLE_NAME
)
target_metadata = MetaData()
store_table(target_metadata, table_name)
url = make_url(os.environ.get("SQLSESSION_URL") or config.get_main_option("sqlalchemy.url") or "")
if "+" not in url.drivername:
    url = async_url(url)


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Compare our table (and what belongs to it) only, never the rest of the database."""
    if type_ == "schema":
        return name is None
    if type_ == "table":
        return name == table_name
    return True


options: dict[str, Any] = {
    "target_metadata": target_metadata,
    "include_name": include_name,
    "version_table": bounded_name("sqlsession_version_", table_name, ""),
}


def run_with(connection: Connection) -> None:
    context.configure(connection=connection, **options)
    with context.begin_transaction():
        context.run_migrations()


async def run_async() -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_with)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=url, literal_binds=True, **options)
    with context.begin_transaction():
        context.run_migrations()
elif url.get_dialect().is_async:
    asyncio.run(run_async())
else:
    sync_engine = create_engine(url, poolclass=pool.NullPool)
    with sync_engine.connect() as sync_connection:
        run_with(sync_connection)
    sync_engine.dispose()
