"""``SQLStore``: a Litestar ``NamespacedStore`` on one SQL table, through SQLAlchemy Core."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final, Literal, NamedTuple

from litestar.stores.base import NamespacedStore
from sqlalchemy import (
    BigInteger,
    Integer,
    MetaData,
    Table,
    bindparam,
    case,
    delete,
    func,
    null,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import QueuePool

from . import _dialects
from ._execution import Executor, Statement
from ._keys import decode_namespace, encode_namespace, key_digest, namespace_range
from ._sealing import Sealer
from .errors import StoreError, TableMissingError
from .schema import DEFAULT_TABLE_NAME, store_table

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import TracebackType

    from sqlalchemy.sql import ColumnElement, Executable
    from typing_extensions import Self

__all__ = (
    "DEFAULT_MAX_VALUE_SIZE",
    "DEFAULT_URL",
    "DELETE_BATCH_SIZE",
    "RESEAL_BATCH_SIZE",
    "NamespaceStats",
    "OnError",
    "SQLStore",
    "StoreError",
    "StoreStats",
    "TableMissingError",
)

DEFAULT_URL: Final = "sqlite+aiosqlite:///sqlsession.db"
"""The embedded default: a SQLite file in the working directory."""

DEFAULT_MAX_VALUE_SIZE: Final = 4 * 1024 * 1024
"""4 MiB: fits MySQL/MariaDB's default ``max_allowed_packet`` (16 MiB) even fully escaped."""

DELETE_BATCH_SIZE: Final = 5000
"""Rows per ``DELETE`` statement of ``delete_expired``: no statement holds locks for long."""

RESEAL_BATCH_SIZE: Final = 500
"""Rows read per ``SELECT`` of ``reseal`` (each row is then rewritten by a statement of its own)."""

_MICROSECONDS: Final = 1_000_000
"""Microseconds per second: ``expires_at`` is Unix time in microseconds."""
_INT64_MAX: Final = 2**63 - 1

OnError = Literal["raise", "miss"]
"""What a store does when the database cannot be reached: raise ``StoreUnavailableError``, or
answer as a miss (reads find nothing, writes and deletes do nothing)."""


def check_on_error(value: object, name: str = "on_error") -> OnError:
    """``value`` if it is ``"raise"`` or ``"miss"``, else ``TypeError``/``ValueError``."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be 'raise' or 'miss', not {type(value).__name__}")
    if value == "raise":
        return "raise"
    if value == "miss":
        return "miss"
    raise ValueError(f"{name} must be 'raise' or 'miss', not {value!r}")


def _check_renew_threshold(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"renew_threshold must be a float, not {type(value).__name__}")
    if not 0.0 <= value < 1.0:  # NaN fails too
        raise ValueError(f"renew_threshold must be at least 0 and less than 1, not {value!r}")
    return float(value)


@dataclass(frozen=True)
class NamespaceStats:
    """What one namespace holds."""

    rows: int
    expired: int


@dataclass(frozen=True)
class StoreStats:
    """What a namespace and the namespaces below it hold (``SQLStore.stats``)."""

    rows: int
    expired: int
    namespaces: dict[tuple[str, ...], NamespaceStats]
    """Per namespace path (``()`` is the root namespace), sorted."""


def _duration_us(value: object, name: str) -> int:
    """A duration argument in microseconds; ``TypeError``/``ValueError`` for anything odd."""
    if isinstance(value, timedelta):
        return value // timedelta(microseconds=1)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be None, an int, a float or a timedelta, not {type(value).__name__}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, not {value!r}")
        return round(value * _MICROSECONDS)
    return value * _MICROSECONDS


def _check_key(key: object) -> str:
    if not isinstance(key, str):
        raise TypeError(f"key must be a str, not {type(key).__name__}")
    return key


class _Scoped(NamedTuple):
    """An operation on many keys as two statements: for a namespace and the namespaces below it
    (a range of the ``namespace`` column), and for the whole table (the root store)."""

    subtree: Statement
    table: Statement


class _Shared:
    """The part of a store that its namespaces (``with_namespace``) share with it: the engine and
    its ``Executor``, the ``Table``, the statements (compiled once for the engine's dialect), the
    clock, the value size limit and the ``Sealer``. A store adds only its namespace and its own
    settings (``on_error``, ``renew_threshold``)."""

    __slots__ = (
        "clock",
        "delete_all",
        "delete_expired",
        "delete_key",
        "engine",
        "executor",
        "max_value_size",
        "renew_cas",
        "renew_returning",
        "reseal_cas",
        "reseal_rows",
        "sealer",
        "select_expiry",
        "select_value",
        "select_value_expiry",
        "stats",
        "table",
        "upsert",
    )

    def __init__(
        self,
        engine: AsyncEngine,
        table: Table,
        clock: Callable[[], float],
        max_value_size: int,
        executor: Executor,
        sealer: Sealer,
    ) -> None:
        self.engine = engine
        self.executor = executor
        self.sealer = sealer
        self.table = table
        self.clock = clock
        self.max_value_size = max_value_size

        c = table.c
        dialect = engine.dialect
        this_key = (c.namespace == bindparam("ns"), c.key_hash == bindparam("kh"))
        live = or_(c.expires_at.is_(None), c.expires_at > bindparam("now", type_=BigInteger))
        in_range = (c.namespace >= bindparam("lo"), c.namespace < bindparam("hi"))
        expired = c.expires_at <= bindparam("now", type_=BigInteger)
        new_expiry = bindparam("new_exp", type_=BigInteger)

        def prepare(core: Executable, column_keys: tuple[str, ...] | None = None) -> Statement:
            return Statement(core, dialect, column_keys)

        def scoped(build: Callable[[tuple[ColumnElement[bool], ...]], Executable]) -> _Scoped:
            return _Scoped(subtree=prepare(build(in_range)), table=prepare(build(())))

        self.upsert = prepare(_dialects.upsert_statement(dialect, table), tuple(c.keys()))
        self.select_value = prepare(select(c.value).where(*this_key, live))
        self.select_expiry = prepare(select(c.expires_at).where(*this_key, live))
        self.select_value_expiry = prepare(select(c.value, c.expires_at).where(*this_key, live))
        self.renew_returning = (
            prepare(
                update(table)
                .where(*this_key, live)
                .values(expires_at=case((c.expires_at.is_(None), null()), else_=new_expiry))
                .returning(c.value)
            )
            if _dialects.renew_with_returning(dialect)
            else None
        )
        # compare-and-set: renews only the version that was read, never a deleted or replaced one,
        # and only while it is still live (it may have expired since it was read)
        self.renew_cas = prepare(
            update(table)
            .where(
                *this_key,
                c.expires_at == bindparam("old_exp", type_=BigInteger),
                c.expires_at > bindparam("now", type_=BigInteger),
            )
            .values(expires_at=new_expiry)
        )
        self.delete_key = prepare(delete(table).where(*this_key))
        self.delete_all = scoped(lambda where: delete(table).where(*where))
        self.delete_expired = scoped(
            lambda where: _dialects.bounded_delete(dialect, table, where, expired, DELETE_BATCH_SIZE)
        )
        counts = select(
            c.namespace, func.count(), func.coalesce(func.sum(case((expired, 1), else_=0)), 0)
        ).group_by(c.namespace)
        self.stats = scoped(lambda where: counts.where(*where))
        # reseal: the next rows after (after_ns, after_kh) in key order, and a compare-and-set that
        # rewrites a value only if it is still the one read (a concurrent set or delete wins)
        rows = (
            select(c.namespace, c.key_hash, c.value)
            .where(
                live, tuple_(c.namespace, c.key_hash) > tuple_(bindparam("after_ns"), bindparam("after_kh"))
            )
            .order_by(c.namespace, c.key_hash)
            .limit(bindparam("batch", type_=Integer))
        )
        self.reseal_rows = scoped(lambda where: rows.where(*where))
        self.reseal_cas = prepare(
            update(table)
            .where(*this_key, c.value == bindparam("old_value"))
            .values(value=bindparam("new_value"))
        )

    def now_us(self) -> int:
        return round(self.clock() * _MICROSECONDS)

    async def first(
        self, stmt: Statement, params: Mapping[str, Any], fail_open: bool = False
    ) -> Sequence[Any] | None:
        rows = await self.executor.rows(stmt, params, fail_open=fail_open)
        return rows[0] if rows else None

    async def scalar(self, stmt: Statement, params: Mapping[str, Any], fail_open: bool = False) -> Any:
        rows = await self.executor.rows(stmt, params, fail_open=fail_open)
        return rows[0][0] if rows else None


def _kept_connections(engine: AsyncEngine, options: Mapping[str, Any]) -> int:
    """How many checked-out connections a store that owns ``engine`` keeps between calls, per event
    loop: one fewer than the pool keeps (one stays for other users of the engine, such as the
    migrations), and none when the pool pings or recycles connections on checkout."""
    pool = engine.sync_engine.pool
    if not isinstance(pool, QueuePool) or options.get("pool_pre_ping"):
        return 0
    recycle = options.get("pool_recycle")
    if recycle is not None and recycle > -1:
        return 0
    return max(pool.size() - 1, 0)


class SQLStore(NamespacedStore):
    """Atomic, asynchronous key/value store on one SQL table (SQLite, PostgreSQL, MySQL/MariaDB).

    Keys are stored as SHA-256 digests; values are bytes (``str`` is stored as UTF-8).
    Expiry uses the application's clock (``clock``), never the database's. ``on_error="miss"``
    applies to ``get``, ``exists``, ``expires_in``, ``set``, ``delete`` and ``delete_all``; the
    maintenance calls (``delete_expired``, ``stats``, ``reseal``, ``check``) always raise.
    """

    __slots__ = ("_fail_open", "_ns", "_owner", "_path", "_renew_threshold", "_shared")

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        table_name: str = DEFAULT_TABLE_NAME,
        namespace: str | None = "LITESTAR",
        clock: Callable[[], float] = time.time,
        max_value_size: int = DEFAULT_MAX_VALUE_SIZE,
        renew_threshold: float = 0.0,
        on_error: OnError = "raise",
        compress_min_size: int | None = None,
        encryption_keys: Sequence[bytes] = (),
        read_unsealed: bool = False,
        breaker_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Create a store on ``engine``, which the caller owns (the store never disposes it).

        Args:
            engine: An ``AsyncEngine`` (``sqlite+aiosqlite``, ``postgresql+asyncpg``,
                ``postgresql+psycopg``, ``mysql+asyncmy``).
            table_name: Name of the table created by the migrations.
            namespace: This store's namespace; ``None`` is the root (the whole table).
            clock: Returns the current Unix time in seconds; all expiry is computed from it.
            max_value_size: Largest value in bytes; a larger one raises ``ValueError``.
            renew_threshold: ``0 <= t < 1``. ``get(key, renew_for=R)`` writes the new expiry only
                when that moves it by more than ``R * t`` (or would shorten it); otherwise it only
                reads. Afterwards the key expires in ``R * (1 - t)`` to ``R`` seconds. ``0``:
                every renewal writes (Litestar's semantics).
            on_error: When the database cannot be reached (``StoreUnavailableError``):
                ``"raise"``, or ``"miss"``: ``get`` returns ``None``, ``exists`` ``False``,
                ``expires_in`` ``None``; ``set``, ``delete`` and ``delete_all`` do nothing; after
                repeated failures calls miss at once, without trying, for a back-off (1 s doubling to
                30 s). Other errors, and invalid arguments, raise either way. Namespaces made by
                ``with_namespace`` inherit it.
            compress_min_size: Values of at least this many bytes are stored zlib-compressed when
                that makes them smaller; ``None``: no compression. Values stored uncompressed, also
                by earlier versions, stay readable.
            encryption_keys: 32-byte keys (``os.urandom(32)``) to encrypt values with AES-256-GCM
                (``pip install 'sqlsession[encryption]'``): the first seals, every one opens. A value
                that does not open (another key, altered, copied from another row) reads as missing.
            read_unsealed: With ``encryption_keys``, also read values stored unencrypted (during a
                migration to encryption); by default they read as missing.
            breaker_clock: Returns monotonic seconds; the back-off of ``on_error="miss"`` and the
                interval between repeated log lines are timed with it (injectable, as ``clock``
                is, so that tests need not wait). Namespaces share it.
        """
        if not isinstance(engine, AsyncEngine):
            raise TypeError(f"engine must be a sqlalchemy AsyncEngine, not {type(engine).__name__}")
        _dialects.check_driver(engine.dialect.name, engine.dialect.driver)
        if namespace is not None and not isinstance(namespace, str):
            raise TypeError(f"namespace must be a str or None, not {type(namespace).__name__}")
        if not callable(clock):
            raise TypeError("clock must be a callable returning the Unix time in seconds")
        if not callable(breaker_clock):
            raise TypeError("breaker_clock must be a callable returning monotonic seconds")
        if isinstance(max_value_size, bool) or not isinstance(max_value_size, int) or max_value_size <= 0:
            raise ValueError(f"max_value_size must be a positive int, not {max_value_size!r}")
        self._renew_threshold = _check_renew_threshold(renew_threshold)
        self._fail_open = check_on_error(on_error) == "miss"
        sealer = Sealer(
            compress_min_size=compress_min_size,
            encryption_keys=encryption_keys,
            read_unsealed=read_unsealed,
            max_value_size=max_value_size,
        )
        table = store_table(MetaData(), table_name)
        executor = Executor(engine, table.name, owned=False, breaker_clock=breaker_clock)
        self._shared = _Shared(engine, table, clock, max_value_size, executor, sealer)
        self._owner = False
        self._set_path(() if namespace is None else (namespace,))

    def _set_path(self, path: tuple[str, ...]) -> None:
        self._ns = encode_namespace(path)
        self._path = path
        self.namespace = path[-1] if path else None

    def _namespaced(self, path: tuple[str, ...], *, fail_open: bool) -> Self:
        """A store on ``path`` that shares this one's engine, table, statements and sealing (and
        never disposes the engine)."""
        store = copy.copy(self)
        store._fail_open = fail_open
        store._owner = False
        store._set_path(path)
        return store

    @classmethod
    def with_url(
        cls,
        url: str | URL,
        *,
        engine_options: Mapping[str, Any] | None = None,
        table_name: str = DEFAULT_TABLE_NAME,
        namespace: str | None = "LITESTAR",
        clock: Callable[[], float] = time.time,
        max_value_size: int = DEFAULT_MAX_VALUE_SIZE,
        transaction_pooling: bool = False,
        renew_threshold: float = 0.0,
        on_error: OnError = "raise",
        compress_min_size: int | None = None,
        encryption_keys: Sequence[bytes] = (),
        read_unsealed: bool = False,
        breaker_clock: Callable[[], float] = time.monotonic,
    ) -> SQLStore:
        """Create a store with an engine of its own, disposed by ``__aexit__``.

        A URL without a driver gets the async default (``sqlite+aiosqlite``,
        ``postgresql+asyncpg`` also for ``postgres://``, ``mysql+asyncmy``, ``mariadb+asyncmy``);
        a driver the store does not run on is a ``ValueError``, a supported one that is not
        installed a ``ModuleNotFoundError`` that names the extra to install. The engine runs in
        autocommit mode (every operation is one atomic statement); on SQLite it uses WAL,
        ``synchronous=NORMAL`` and a busy timeout. ``engine_options`` go to
        ``create_async_engine`` (``pool_size``, ``max_overflow``, ``connect_args``, ...);
        ``isolation_level`` cannot be changed.

        ``transaction_pooling=True``: the URL points at a pooler in transaction (or statement)
        pooling mode, such as PgBouncer with ``pool_mode = transaction``, which may run two
        statements of one connection on two server connections. The PostgreSQL drivers then use no
        named server-side prepared statements: asyncpg gets ``statement_cache_size=0``, psycopg
        ``prepare_threshold=None`` (over any given in ``connect_args``). Other drivers need nothing.
        """
        options: dict[str, Any] = dict(engine_options or {})
        # errors must not carry the parameters (session data) into logs
        options.setdefault("hide_parameters", True)
        if options.setdefault("isolation_level", "AUTOCOMMIT") != "AUTOCOMMIT":
            raise ValueError("the store runs in autocommit: engine_options cannot set isolation_level")
        parsed = _dialects.async_url(url)
        try:
            engine = create_async_engine(parsed, **options)
        except ImportError as error:
            raise _dialects.missing_driver(error, parsed) from error
        try:
            _dialects.configure_owned_engine(engine, transaction_pooling=transaction_pooling)
            store = cls(
                engine,
                table_name=table_name,
                namespace=namespace,
                clock=clock,
                max_value_size=max_value_size,
                renew_threshold=renew_threshold,
                on_error=on_error,
                compress_min_size=compress_min_size,
                encryption_keys=encryption_keys,
                read_unsealed=read_unsealed,
                breaker_clock=breaker_clock,
            )
            # the store owns this engine: its executor keeps connections between calls and close()
            # disposes the engine
            keep = _kept_connections(engine, options)
            store._shared.executor = Executor(
                engine, store.table.name, owned=True, keep=keep, breaker_clock=breaker_clock
            )
            store._owner = True
        except BaseException:
            engine.sync_engine.dispose(close=False)
            raise
        return store

    # -- attributes -------------------------------------------------------------------------

    @property
    def engine(self) -> AsyncEngine:
        """The ``AsyncEngine`` this store runs on."""
        return self._shared.engine

    @property
    def table(self) -> Table:
        """The ``sqlalchemy.Table`` this store uses."""
        return self._shared.table

    @property
    def namespace_path(self) -> tuple[str, ...]:
        """The names from the root to this store's namespace; ``()`` for the root."""
        return self._path

    @property
    def max_value_size(self) -> int:
        """Largest value accepted, in bytes."""
        return self._shared.max_value_size

    @property
    def compress_min_size(self) -> int | None:
        """Values of at least this many bytes are stored compressed (when smaller); ``None``: never."""
        return self._shared.sealer.compress_min_size

    @property
    def encryption_key_ids(self) -> tuple[str, ...]:
        """The ids (hex) of the encryption keys, in their order (the first seals); not the keys."""
        return self._shared.sealer.key_ids

    @property
    def renew_threshold(self) -> float:
        """The part of ``renew_for`` by which a renewal may leave the expiry short, to save a write."""
        return self._renew_threshold

    @property
    def breaker_open(self) -> bool:
        """Whether calls of ``on_error="miss"`` stores (this one and those sharing its engine
        through ``with_namespace``) answer as misses now without trying the database, after
        repeated failures to reach it (for a health or readiness check)."""
        return self._shared.executor.breaker.is_open

    @property
    def on_error(self) -> OnError:
        """``"miss"``: a database that cannot be reached gives misses; ``"raise"``: errors."""
        return "miss" if self._fail_open else "raise"

    def __repr__(self) -> str:
        url = self._shared.engine.url.render_as_string(hide_password=True)
        return f"{type(self).__name__}(url={url!r}, table={self.table.name!r}, namespace={self._path!r})"

    def _whole_table(self) -> SQLStore:
        """The root store of this store's table, sharing its engine, statements and sealing; its
        calls raise on failure (the maintenance commands use it)."""
        return self._namespaced((), fail_open=False)

    def with_namespace(self, namespace: str, *, on_error: OnError | None = None) -> Self:
        """A store in the child namespace ``namespace``, sharing this store's engine and table
        (and its circuit breaker), its ``renew_threshold`` and, unless given, its ``on_error``.

        ``delete_all`` on a parent also clears its children; every other operation is isolated.
        """
        if not isinstance(namespace, str):
            raise TypeError(f"namespace must be a str, not {type(namespace).__name__}")
        fail_open = self._fail_open if on_error is None else check_on_error(on_error) == "miss"
        return self._namespaced((*self._path, namespace), fail_open=fail_open)

    # -- operations -------------------------------------------------------------------------

    async def set(
        self, key: str, value: str | bytes, expires_in: int | float | timedelta | None = None
    ) -> None:
        """Store ``value`` under ``key``, replacing any previous value atomically.

        ``expires_in``: ``None`` or ``0`` = never expires; ``> 0`` = expires after that many
        seconds (``float`` and ``timedelta`` give sub-second precision); ``< 0`` = stored expired.
        """
        key = _check_key(key)
        if isinstance(value, str):
            data = value.encode("utf-8")
        elif isinstance(value, bytes):
            data = value
        else:
            raise TypeError(f"value must be str or bytes, not {type(value).__name__}")
        shared = self._shared
        if len(data) > shared.max_value_size:
            raise ValueError(
                f"value is {len(data)} bytes, larger than max_value_size={shared.max_value_size}"
            )
        expires_at = None
        if expires_in is not None:
            delta = _duration_us(expires_in, "expires_in")
            if delta:
                expires_at = shared.now_us() + delta
                if not -_INT64_MAX <= expires_at <= _INT64_MAX:
                    raise ValueError(f"expires_in is out of range: {expires_in!r}")
        kh = key_digest(key)
        data = shared.sealer.seal(data, self._ns, kh)
        params = {"namespace": self._ns, "key_hash": kh, "value": data, "expires_at": expires_at}
        await shared.executor.rowcount(shared.upsert, params, fail_open=self._fail_open)

    async def get(self, key: str, renew_for: int | float | timedelta | None = None) -> bytes | None:
        """The value of ``key``, or ``None`` when it is missing or expired.

        ``renew_for`` (``> 0``): if the key has an expiry, it now expires ``renew_for`` seconds
        from now; a key without expiry keeps none. Renewal never brings back a deleted or
        expired key. With ``renew_threshold`` ``t > 0`` an expiry already between
        ``renew_for * (1 - t)`` and ``renew_for`` seconds from now is left as it is (a read, no write).
        """
        key = _check_key(key)
        renew_us = 0
        if renew_for is not None:
            renew_us = _duration_us(renew_for, "renew_for")
            if renew_us < 0:
                raise ValueError(f"renew_for must not be negative, got {renew_for!r}")
        shared = self._shared
        now = shared.now_us()
        if now + renew_us > _INT64_MAX:
            raise ValueError(f"renew_for is out of range: {renew_for!r}")
        params: dict[str, Any] = {"ns": self._ns, "kh": key_digest(key), "now": now}
        fail_open = self._fail_open
        threshold = self._renew_threshold
        if not renew_us:
            value = await shared.scalar(shared.select_value, params, fail_open)
        elif shared.renew_returning is not None and not threshold:
            params["new_exp"] = now + renew_us
            value = await shared.scalar(shared.renew_returning, params, fail_open)
        else:
            # read first; write (compare-and-set on the version read) only when the expiry must move
            row = await shared.first(shared.select_value_expiry, params, fail_open)
            if row is None:
                return None
            value, old_expiry = row
            new_expiry = now + renew_us
            if old_expiry is not None and not (
                threshold and new_expiry - int(renew_us * threshold) <= old_expiry <= new_expiry
            ):
                cas = {
                    "ns": self._ns,
                    "kh": params["kh"],
                    "old_exp": old_expiry,
                    "new_exp": new_expiry,
                    "now": shared.now_us(),
                }
                await shared.executor.rowcount(shared.renew_cas, cas, fail_open=fail_open)
        return None if value is None else shared.sealer.open(bytes(value), self._ns, params["kh"])

    async def exists(self, key: str) -> bool:
        """Whether ``key`` is present and not expired."""
        return await self._expiry_row(key) is not None

    async def expires_in(self, key: str) -> int | None:
        """Whole seconds (rounded up) until ``key`` expires; ``-1`` if it never expires;
        ``None`` if it is missing or expired."""
        row = await self._expiry_row(key)
        if row is None:
            return None
        expires_at, now = row
        if expires_at is None:
            return -1
        return -((now - expires_at) // _MICROSECONDS)

    async def _expiry_row(self, key: str) -> tuple[int | None, int] | None:
        key = _check_key(key)
        shared = self._shared
        now = shared.now_us()
        kh = key_digest(key)
        params = {"ns": self._ns, "kh": kh, "now": now}
        if not shared.sealer.key_ids:
            row = await shared.first(shared.select_expiry, params, self._fail_open)
            return None if row is None else (row[0], now)
        # encrypted: a value that does not open (another key, altered, copied) is missing, as for get
        row = await shared.first(shared.select_value_expiry, params, self._fail_open)
        if row is None or shared.sealer.open(bytes(row[0]), self._ns, kh) is None:
            return None
        return row[1], now

    async def delete(self, key: str) -> None:
        """Delete ``key``; no error if it does not exist."""
        key = _check_key(key)
        shared = self._shared
        params = {"ns": self._ns, "kh": key_digest(key)}
        await shared.executor.rowcount(shared.delete_key, params, fail_open=self._fail_open)

    async def delete_all(self) -> None:
        """Delete every key of this namespace and of all namespaces below it (root: the table)."""
        shared = self._shared
        stmt, params = self._subtree(shared.delete_all)
        await shared.executor.rowcount(stmt, params, fail_open=self._fail_open)

    async def delete_expired(self) -> int:
        """Delete the expired keys of this namespace and below; return how many were deleted.

        Deletes in batches of at most ``DELETE_BATCH_SIZE`` rows, each its own statement found
        through the ``expires_at`` index, so that no statement holds locks for long.
        """
        shared = self._shared
        stmt, params = self._subtree(shared.delete_expired, now=shared.now_us())
        total = 0
        while True:
            deleted = await shared.executor.rowcount(stmt, params)
            total += deleted
            if deleted < DELETE_BATCH_SIZE:
                return total

    async def stats(self) -> StoreStats:
        """Rows and expired rows of this namespace and below, in all and per namespace (one query)."""
        shared = self._shared
        rows = await shared.executor.rows(*self._subtree(shared.stats, now=shared.now_us()))
        namespaces = {
            decode_namespace(bytes(ns)): NamespaceStats(int(count), int(expired))
            for ns, count, expired in rows
        }
        return StoreStats(
            rows=sum(n.rows for n in namespaces.values()),
            expired=sum(n.expired for n in namespaces.values()),
            namespaces=dict(sorted(namespaces.items())),
        )

    async def reseal(self, *, batch_size: int = RESEAL_BATCH_SIZE) -> int:
        """Rewrite the live values of this namespace and below that are not sealed under the first
        of ``encryption_keys`` as ``set`` would store them now (without keys: those not compressed
        as ``compress_min_size`` says). Return how many rows were rewritten.

        Run it after putting a new key first, so that the old one can then be dropped. Reads
        ``batch_size`` rows per ``SELECT`` in key order, each batch a statement of its own (no long
        transaction), and rewrites each row with a compare-and-set on the value it read: a
        concurrent ``set`` or ``delete`` wins, renewals are kept, so it can run beside live traffic.
        A value that does not open is left as it is; so is a plain one, unless ``read_unsealed``.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int):
            raise TypeError(f"batch_size must be an int, not {type(batch_size).__name__}")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, not {batch_size!r}")
        shared = self._shared
        sealer = shared.sealer
        stmt, params = self._subtree(shared.reseal_rows, batch=batch_size)
        after = (self._ns, b"")  # before every key digest of this namespace
        total = 0
        while True:
            params.update(after_ns=after[0], after_kh=after[1], now=shared.now_us())
            rows = await shared.executor.rows(stmt, params)
            for ns, kh, value in rows:
                ns, kh, old = bytes(ns), bytes(kh), bytes(value)
                new = sealer.resealed(old, ns, kh)
                if new is not None:
                    cas = {"ns": ns, "kh": kh, "old_value": old, "new_value": new}
                    total += await shared.executor.rowcount(shared.reseal_cas, cas)
            if len(rows) < batch_size:
                return total
            after = (bytes(rows[-1][0]), bytes(rows[-1][1]))

    def _subtree(self, scoped: _Scoped, **params: Any) -> tuple[Statement, dict[str, Any]]:
        """The statement for this namespace and all below it (the root: the table), and its
        parameters."""
        bounds = namespace_range(self._ns)
        if bounds is None:
            return scoped.table, params
        return scoped.subtree, {**params, "lo": bounds[0], "hi": bounds[1]}

    # -- life cycle -------------------------------------------------------------------------

    async def check(self) -> None:
        """Raise unless the database answers and the table exists with the store's columns, at the
        revision this version of sqlsession expects (a table made without the migrations, by
        ``metadata.create_all``, has no revision recorded and passes). The error says how to fix it:
        ``TableMissingError`` names the ``python -m sqlsession upgrade`` command; ``StoreError``
        otherwise. ``SQLStorePlugin`` runs it at the app's start-up."""
        from . import _migrate  # Alembic, only when asked

        await _migrate.check(self._shared.engine, self._shared.table.name)

    async def close(self) -> None:
        """Give back the connections this store holds on this event loop; if the store created its
        engine (``with_url``), also close the engine's pooled connections. The store stays usable:
        the next call opens new connections. A store on the caller's engine holds none between calls
        (this only waits for connections still being given back), and a child namespace leaves the
        engine to its parent."""
        await self._shared.executor.close(dispose=self._owner)

    async def __aenter__(self) -> Self:  # type: ignore[override]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        """``close()`` the store; it can be used again after."""
        await self.close()
