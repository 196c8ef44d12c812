"""Alembic environment of sqlsession: wires the connection or URL, the table name and the metadata.

Connection: the one ``python -m sqlsession upgrade`` (``sqlsession._migrate``) hands over in
``config.attributes["connection"]``; else a URL: ``SQLSESSION_URL``, else ``sqlalchemy.url`` of
the ini file. A URL without a driver (``postgresql://...``) gets sqlsession's async default; a
sync driver URL (``sqlite:///x.db``, ``postgresql+psycopg2://...``) runs synchronously.
Table: ``-x table=NAME``, else ``SQLSESSION_TABLE``, else ``litestar_store``. The version is
kept in a table of its own, ``sqlsession_version_<table>``, never in the app's ``alembic_version``.
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
from sqlsession.schema import DEFAULT_TABLE_NAME, store_table, version_table_name

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
    "version_table": version_table_name(table_name),
}


def run_with(connection: Connection) -> None:
    context.configure(connection=connection, **options)
    with context.begin_transaction():
        context.run_migrations()


def run_from_url() -> None:
    url = make_url(os.environ.get("SQLSESSION_URL") or config.get_main_option("sqlalchemy.url") or "")
    if "+" not in url.drivername:
        url = async_url(url)
    if context.is_offline_mode():
        context.configure(url=url, literal_binds=True, **options)
        with context.begin_transaction():
            context.run_migrations()
    elif url.get_dialect().is_async:

        async def run_async() -> None:
            engine = create_async_engine(url, poolclass=pool.NullPool)
            try:
                async with engine.connect() as connection:
                    await connection.run_sync(run_with)
            finally:
                await engine.dispose()

        asyncio.run(run_async())
    else:
        engine = create_engine(url, poolclass=pool.NullPool)
        try:
            with engine.connect() as connection:
                run_with(connection)
        finally:
            engine.dispose()


given: Connection | None = config.attributes.get("connection")
if given is not None:
    run_with(given)
else:
    run_from_url()
