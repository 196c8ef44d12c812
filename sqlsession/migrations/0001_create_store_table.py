"""Create the sqlsession store table and its expires_at index.

Frozen: this revision does not import the live Table. The table name comes from
``alembic -x table=NAME``, else ``SQLSESSION_TABLE``, else ``litestar_store``.

Revision ID: sqlsession_0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import hashlib
import os
import re

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import mysql

revision = "sqlsession_0001"
down_revision = None
branch_labels = ("sqlsession",)
depends_on = None


def _table_name() -> str:
    name = (
        context.get_x_argument(as_dictionary=True).get("table")
        or os.environ.get("SQLSESSION_TABLE")
        or "litestar_store"
    )
    if len(name) > 63 or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"invalid table name {name!r}")
    return name


def _index_name(table: str) -> str:
    name = f"ix_{table}_expires_at"
    if len(name) <= 63:
        return name
    digest = hashlib.sha256(table.encode()).hexdigest()[:8]
    return f"ix_{table[: 63 - 3 - 11 - 8 - 1]}_{digest}_expires_at"


def upgrade() -> None:
    table = _table_name()
    op.create_table(
        table,
        sa.Column(
            "namespace",
            sa.LargeBinary().with_variant(mysql.VARBINARY(255), "mysql", "mariadb"),
            nullable=False,
        ),
        sa.Column(
            "key_hash",
            sa.LargeBinary().with_variant(mysql.BINARY(32), "mysql", "mariadb"),
            nullable=False,
        ),
        sa.Column(
            "value",
            sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("namespace", "key_hash"),
    )
    op.create_index(
        _index_name(table),
        table,
        ["expires_at"],
        postgresql_where=sa.text("expires_at IS NOT NULL"),
        sqlite_where=sa.text("expires_at IS NOT NULL"),
    )


def downgrade() -> None:
    table = _table_name()
    op.drop_index(_index_name(table), table_name=table)
    op.drop_table(table)
