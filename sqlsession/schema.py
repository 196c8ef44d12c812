"""The one declarative description of the storage: a ``Table`` and its index.

Columns:

- ``namespace``: the store's namespace path, encoded so that every descendant namespace starts
  with its parent's bytes and no sibling does (see :mod:`sqlsession._keys`).
- ``key_hash``: SHA-256 digest of the key (32 bytes). Exact for any ``str``, small in the index,
  and a database dump reveals no live session ID.
- ``value``: the stored bytes (``LONGBLOB`` on MySQL/MariaDB, where ``BLOB`` holds only 64 KiB).
- ``expires_at``: Unix time in microseconds from the application's clock, ``NULL`` = no expiry.

Primary key ``(namespace, key_hash)``, which the table is clustered on (SQLite: ``WITHOUT ROWID``;
InnoDB always is); an index on ``expires_at``, partial (``WHERE expires_at IS NOT NULL``) on SQLite
and PostgreSQL, plain on MySQL/MariaDB.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

from sqlalchemy import BigInteger, Column, Index, LargeBinary, MetaData, Table
from sqlalchemy.dialects import mysql

__all__ = (
    "DEFAULT_TABLE_NAME",
    "HEAD_REVISION",
    "KEY_HASH_SIZE",
    "NAMESPACE_MAX_BYTES",
    "bounded_name",
    "expires_at_index_name",
    "store_table",
    "validate_table_name",
    "version_table_name",
)

DEFAULT_TABLE_NAME = "litestar_store"
KEY_HASH_SIZE = 32
NAMESPACE_MAX_BYTES = 255
_MAX_IDENTIFIER = 63
_TABLE_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def validate_table_name(name: object) -> str:
    """Return ``name`` if it is a safe SQL identifier, else raise ``ValueError``/``TypeError``."""
    if not isinstance(name, str):
        raise TypeError(f"table name must be a str, not {type(name).__name__}")
    if len(name) > _MAX_IDENTIFIER or not _TABLE_NAME_RE.fullmatch(name):
        raise ValueError(
            f"invalid table name {name!r}: it must match ^[A-Za-z_][A-Za-z0-9_]*$ "
            f"and be at most {_MAX_IDENTIFIER} characters"
        )
    return name


def bounded_name(prefix: str, table_name: str, suffix: str) -> str:
    """``prefix + table_name + suffix``, shortened with a digest to fit 63 characters."""
    name = f"{prefix}{table_name}{suffix}"
    if len(name) <= _MAX_IDENTIFIER:
        return name
    digest = hashlib.sha256(table_name.encode()).hexdigest()[:8]
    keep = _MAX_IDENTIFIER - len(prefix) - len(suffix) - len(digest) - 1
    return f"{prefix}{table_name[:keep]}_{digest}{suffix}"


HEAD_REVISION: Final = "sqlsession_0002"
"""The newest of the revisions in ``sqlsession/migrations``: the layout this version of the store
expects (the tests prove it is the head of the revisions)."""
REVISION_PREFIX: Final = "sqlsession_"
"""Every revision of sqlsession's branch has an id that starts with this."""


def version_table_name(table_name: str) -> str:
    """Name of the table where sqlsession's own Alembic environment records the revision of
    the table called ``table_name``."""
    return bounded_name("sqlsession_version_", table_name, "")


def expires_at_index_name(table_name: str) -> str:
    """Name of the ``expires_at`` index of the table called ``table_name``."""
    return bounded_name("ix_", table_name, "_expires_at")


def store_table(metadata: MetaData | None = None, name: str = DEFAULT_TABLE_NAME) -> Table:
    """Return the store's ``Table`` called ``name`` in ``metadata`` (a new ``MetaData`` if omitted).

    Use it to put the table into your own ``MetaData`` (e.g. for your own Alembic autogenerate).
    If ``metadata`` already holds the table, that table is returned.
    """
    validate_table_name(name)
    if metadata is None:
        metadata = MetaData()
    existing = metadata.tables.get(name)
    if existing is not None:
        return existing
    table = Table(
        name,
        metadata,
        Column(
            "namespace",
            LargeBinary().with_variant(mysql.VARBINARY(NAMESPACE_MAX_BYTES), "mysql", "mariadb"),
            primary_key=True,
        ),
        Column(
            "key_hash",
            LargeBinary().with_variant(mysql.BINARY(KEY_HASH_SIZE), "mysql", "mariadb"),
            primary_key=True,
        ),
        Column(
            "value",
            LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb"),
            nullable=False,
        ),
        Column("expires_at", BigInteger, nullable=True),
        sqlite_with_rowid=False,
    )
    Index(
        expires_at_index_name(name),
        table.c.expires_at,
        postgresql_where=table.c.expires_at.isnot(None),
        sqlite_where=table.c.expires_at.isnot(None),
    )
    return table
