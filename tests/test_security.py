"""Security: no session ID in the table, only its digest sent; no password anywhere; injection-shaped
input stored literally or rejected before any SQL.

On timing: a lookup never compares the key itself. The store sends only the key's SHA-256 digest
(``test_only_the_key_digest_is_sent_to_the_database``), and the database finds the row by that
32-byte digest in its primary key index. How long a lookup takes can at most depend on the
digest of the attacker's own guess, which says nothing about the bytes of a live session ID
(finding a key from its digest would need a SHA-256 preimage). There is no timing test: timing
never goes in tests.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import secrets
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import create_async_engine

from sqlsession import SQLStore, StoreError
from sqlsession._dialects import async_url

from ._support import StatementLog, chain, close_store, raw_rows, with_credentials, within
from .conftest import dialect_url, owned_only, sqlite_only

# -- no live session ID in the database -------------------------------------------------------------


def _forms(secret: str) -> list[bytes]:
    """The ways a secret could show up in a column."""
    raw = secret.encode()
    return [raw, raw.hex().encode(), base64.b64encode(raw), secret.encode("utf-16-le"), raw[:16]]


@owned_only
@within(30)
async def test_session_id_never_reaches_the_table(store: SQLStore) -> None:
    session_id = "sid-" + secrets.token_urlsafe(32)
    session_data = b"user=42;role=admin"
    await store.set(session_id, session_data, expires_in=100)
    assert await store.get(session_id, renew_for=200) == session_data
    await store.with_namespace("child").set(session_id, b"other")

    rows = await raw_rows(store)
    assert len(rows) == 2
    digest = hashlib.sha256(session_id.encode()).digest()
    for namespace, key_hash, value, _expires_at in rows:
        assert key_hash == digest
        for column in (namespace, key_hash, value):
            for form in _forms(session_id):
                assert form not in column
        # nor is the session's data in the columns that identify it
        assert session_data not in namespace and session_data not in key_hash
    assert sorted(value for *_, value, _ in rows) == [b"other", session_data]

    # and nothing is left behind once it is deleted
    await store.delete(session_id)
    await store.with_namespace("child").delete(session_id)
    assert await raw_rows(store) == []


def _flatten(parameters: Any) -> Iterator[Any]:
    if isinstance(parameters, dict):
        for value in parameters.values():
            yield from _flatten(value)
    elif isinstance(parameters, (list, tuple)):
        for value in parameters:
            yield from _flatten(value)
    else:
        yield getattr(parameters, "obj", parameters)  # psycopg wraps bytes in Binary(obj)


@owned_only
@within(30)
async def test_only_the_key_digest_is_sent_to_the_database(store: SQLStore) -> None:
    session_id = "sid-" + secrets.token_urlsafe(32)
    digest = hashlib.sha256(session_id.encode()).digest()
    with StatementLog(store) as log:
        await store.set(session_id, b"data", expires_in=100)
        await store.get(session_id)
        await store.get(session_id, renew_for=100)
        await store.exists(session_id)
        await store.expires_in(session_id)
        await store.delete(session_id)
    assert len(log.statements) >= 6
    for sql, parameters in log.statements:
        assert session_id not in sql
        values = list(_flatten(parameters))
        assert digest in [bytes(v) for v in values if isinstance(v, (bytes, bytearray, memoryview))]
        for value in values:
            if isinstance(value, str):
                assert session_id not in value
            elif isinstance(value, (bytes, bytearray, memoryview)):
                for form in _forms(session_id):
                    assert form not in bytes(value)


# -- no password in errors, reprs or logs -----------------------------------------------------------

PASSWORD = "s3cretPW-x9Q2"

UNREACHABLE = {  # nothing listens on port 1: the connection is refused
    "asyncpg": "postgresql+asyncpg://postgres@127.0.0.1:1/test",
    "psycopg": "postgresql+psycopg://postgres@127.0.0.1:1/test",
    "asyncmy": "mysql+asyncmy://root@127.0.0.1:1/test",
}


def _failing_url(driver: str, where: str, tmp_path: Path) -> str:
    """A URL with ``PASSWORD`` that cannot connect: a closed port, or a user the server lacks
    (PostgreSQL's trust authentication accepts any password, never an unknown role)."""
    if where == "closed port":
        return with_credentials(UNREACHABLE[driver], "sqlsession_nobody", PASSWORD)
    return with_credentials(dialect_url(driver, tmp_path), "sqlsession_nobody", PASSWORD)


@pytest.mark.parametrize("where", ["closed port", "real server"])
@pytest.mark.parametrize("driver", ["asyncpg", "psycopg", "asyncmy"])
@within(60)
async def test_password_never_appears_in_errors_reprs_or_logs(
    driver: str,
    where: str,
    engine_mode: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = _failing_url(driver, where, tmp_path)
    assert PASSWORD in url
    with caplog.at_level(logging.DEBUG):
        if engine_mode == "owned":
            store = SQLStore.with_url(url, engine_options={"echo": "debug", "echo_pool": "debug"})
        else:
            store = SQLStore(create_async_engine(async_url(url), echo="debug", echo_pool="debug"))
        errors: list[StoreError] = []
        try:
            for call in (lambda: store.set("k", b"v"), lambda: store.get("k", renew_for=5)):
                with pytest.raises(StoreError) as caught:
                    await asyncio.wait_for(call(), 30)
                errors.append(caught.value)
        finally:
            await close_store(store, engine_mode)
    output = capsys.readouterr()
    texts = [repr(store), str(store), repr(store.engine), repr(store.with_namespace("x"))]
    for error in errors:
        texts += [text for each in chain(error) for text in (str(each), repr(each))]
        texts.append("".join(traceback.format_exception(error)))
    texts += [caplog.text, output.out, output.err]
    texts += [record.getMessage() for record in caplog.records]
    assert caplog.records, "the engine logged nothing: the log check would prove nothing"
    for text in texts:
        assert PASSWORD not in text
    assert "sqlsession_nobody" in repr(store)  # the URL is shown, without its password


# -- injection-shaped input -------------------------------------------------------------------------

INJECTIONS = [
    "'; DROP TABLE {table}; --",
    '"; DROP TABLE {table}; --',
    "' OR '1'='1",
    "1; DELETE FROM {table}",
    "' UNION SELECT * FROM {table} --",
    "); TRUNCATE {table}; --",
    "\\'; DROP TABLE {table}; #",
    "%s",
    "%(value)s",
    "$1",
    "?",
    ":now",
    "%",
    "_",
    "*",
    "\\",
    "`",
    "/*",
    "\x00",
    "\x1a",
]


@owned_only
@within(60)
async def test_injection_shaped_keys_namespaces_and_values_are_stored_literally(store: SQLStore) -> None:
    payloads = [p.format(table=store.table.name) for p in INJECTIONS]
    await store.set("bystander", b"untouched")
    for payload in payloads:
        await store.set(payload, payload)
        await store.with_namespace(payload).set(payload, payload.encode() + b"!")
    for payload in payloads:
        assert await store.get(payload) == payload.encode()
        assert await store.get(payload, renew_for=10) == payload.encode()
        assert await store.with_namespace(payload).get(payload) == payload.encode() + b"!"
    assert len(await raw_rows(store)) == 2 * len(payloads) + 1
    # wildcard-shaped keys and namespaces match only themselves
    await store.delete("%")
    await store.with_namespace("%").delete_all()
    assert await store.get("%") is None
    assert await store.with_namespace("%").get("%") is None
    assert len(await raw_rows(store)) == 2 * len(payloads) - 1
    assert await store.get("_") == b"_"
    assert await store.get("bystander") == b"untouched"


INJECTION_TABLE_NAMES = [
    "t; DROP TABLE users",
    "t`",
    't"',
    "t'--",
    "t\n",
    "t\x00",
    "t/*x*/",
    "t OR 1=1",
    "t\u0430ble",  # with a Cyrillic a
    "t)",
    "users--",
    "information_schema.tables",
]


@sqlite_only
@pytest.mark.parametrize("name", INJECTION_TABLE_NAMES)
async def test_injection_shaped_table_names_are_rejected_before_any_sql(url: str, name: str) -> None:
    engine = create_async_engine(async_url(url))
    activity: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute", lambda *args: activity.append(args[2]))
    event.listen(engine.sync_engine, "connect", lambda *args: activity.append("connect"))
    try:
        with pytest.raises(ValueError, match="invalid table name"):
            SQLStore(engine, table_name=name)
        with pytest.raises(ValueError, match="invalid table name"):
            SQLStore.with_url(url, table_name=name)
        assert activity == []
    finally:
        await engine.dispose()
