"""``SQLStorePlugin``: sessions, response cache and rate limits of a Litestar app on one SQL table."""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from litestar.plugins import CLIPlugin, InitPlugin
from litestar.stores.registry import StoreRegistry, default_default_factory
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from .schema import DEFAULT_TABLE_NAME
from .store import DEFAULT_MAX_VALUE_SIZE, DEFAULT_URL, OnError, SQLStore, check_on_error

if TYPE_CHECKING:
    from click import Group
    from litestar import Litestar
    from litestar.config.app import AppConfig
    from litestar.stores.base import Store

__all__ = (
    "DEFAULT_CLEANUP_INTERVAL",
    "DEFAULT_ON_ERROR",
    "DEFAULT_STORE_NAMES",
    "DEFAULT_URL",
    "SQLStorePlugin",
)

DEFAULT_STORE_NAMES = ("sessions", "response_cache", "rate_limit")
DEFAULT_CLEANUP_INTERVAL = 300.0
"""Seconds between two runs of the background cleanup (with random jitter of +/- half of it)."""
DEFAULT_ON_ERROR: Mapping[str, OnError] = MappingProxyType(
    {"sessions": "raise", "response_cache": "miss", "rate_limit": "miss"}
)
"""The plugin's ``on_error`` per store name: the response cache and the rate limit fail open (a
database that cannot be reached means no caching and no limit), sessions fail (a request must not
run without its session). Any other name: ``"raise"``."""

logger = logging.getLogger("sqlsession")


class SQLStorePlugin(InitPlugin, CLIPlugin):
    """Registers SQL stores with a Litestar app, cleans up expired entries, adds CLI commands.

    Every store name (by default ``sessions``, ``response_cache`` and ``rate_limit``, and any other
    name the app asks its ``StoreRegistry`` for) is a namespace of the same table. Stores the app
    registered itself are kept.
    """

    __slots__ = (
        "_check_on_startup",
        "_cleanup_interval",
        "_cleanup_task",
        "_on_error",
        "_on_error_other",
        "_store",
        "_store_names",
    )

    def __init__(
        self,
        url: str | URL | None = None,
        *,
        engine: AsyncEngine | None = None,
        table_name: str = DEFAULT_TABLE_NAME,
        namespace: str | None = "LITESTAR",
        store_names: Iterable[str] = DEFAULT_STORE_NAMES,
        cleanup_interval: float | timedelta | None = DEFAULT_CLEANUP_INTERVAL,
        engine_options: Mapping[str, Any] | None = None,
        clock: Callable[[], float] = time.time,
        max_value_size: int = DEFAULT_MAX_VALUE_SIZE,
        transaction_pooling: bool = False,
        check_on_startup: bool = True,
        renew_threshold: float = 0.0,
        on_error: OnError | Mapping[str, OnError] = DEFAULT_ON_ERROR,
        compress_min_size: int | None = None,
        encryption_keys: Sequence[bytes] = (),
        read_unsealed: bool = False,
    ) -> None:
        """Configure the plugin.

        Args:
            url: Database URL; the plugin creates the engine and disposes it at shutdown.
                Default (with no ``engine`` either): ``sqlite+aiosqlite:///sqlsession.db``.
            engine: An ``AsyncEngine`` you own instead of ``url``; the plugin never disposes it.
            table_name: The table created by the migrations.
            namespace: Parent namespace of all the plugin's stores (``None``: the root).
            store_names: Names registered with the app, each a namespace of its own.
            cleanup_interval: Seconds (or ``timedelta``) between background deletions of expired
                entries, with random jitter of +/- half the interval; ``None`` turns it off.
            engine_options: Extra ``create_async_engine`` arguments (with ``url`` only).
            clock: The stores' clock (Unix time in seconds).
            max_value_size: Largest value in bytes.
            transaction_pooling: ``url`` points at a pooler in transaction pooling mode (PgBouncer's
                ``pool_mode = transaction``): see ``SQLStore.with_url`` (with ``url`` only; configure
                your own engine as the README says).
            check_on_startup: At the app's start-up, check that the database answers and the
                table exists at the expected revision (``SQLStore.check``); on failure the app
                does not start, and the error says how to fix it. Turn it off for an app that
                starts before its database.
            renew_threshold: Of every store: renewals that would move an expiry by at most this
                part of ``renew_for`` only read (see ``SQLStore``); ``0``: every renewal writes.
            on_error: What a store does when the database cannot be reached: ``"raise"``
                (``StoreUnavailableError``) or ``"miss"`` (reads find nothing, writes do nothing;
                see ``SQLStore``). One value for every store name, or a mapping from store names
                to values, over ``DEFAULT_ON_ERROR`` (``"miss"`` for ``response_cache`` and
                ``rate_limit``, ``"raise"`` for ``sessions``); names in neither raise.
            compress_min_size: Of every store: values of at least this many bytes are stored
                compressed (when smaller); see ``SQLStore``.
            encryption_keys: Of every store: 32-byte keys that encrypt the values (the first seals,
                every one opens); see ``SQLStore``. ``litestar sqlsession reseal`` re-seals the
                table under the first.
            read_unsealed: With ``encryption_keys``, also read values stored unencrypted.
        """
        if url is not None and engine is not None:
            raise ValueError("pass either url or engine, not both")
        # every check that needs no engine comes first: a refused option leaves no engine behind
        names = tuple(store_names) if not isinstance(store_names, str) else (store_names,)
        for name in names:
            if not isinstance(name, str):
                raise TypeError(f"store names must be str, not {type(name).__name__}")
        self._store_names = tuple(dict.fromkeys(names))
        if not isinstance(check_on_startup, bool):
            raise TypeError(f"check_on_startup must be a bool, not {type(check_on_startup).__name__}")
        self._check_on_startup = check_on_startup
        self._cleanup_interval = _interval(cleanup_interval)
        self._on_error_other, self._on_error = _on_error_by_name(on_error)
        # the parent store's settings, whoever made the engine (its on_error stays "raise")
        settings: dict[str, Any] = {
            "table_name": table_name,
            "namespace": namespace,
            "clock": clock,
            "max_value_size": max_value_size,
            "renew_threshold": renew_threshold,
            "compress_min_size": compress_min_size,
            "encryption_keys": encryption_keys,
            "read_unsealed": read_unsealed,
        }
        if engine is not None:
            if engine_options:
                raise ValueError("engine_options only apply when the plugin creates the engine from url")
            if transaction_pooling:
                raise ValueError(
                    "transaction_pooling only applies when the plugin creates the engine from url; "
                    "configure your engine for the pooler (see the README, 'Behind PgBouncer')"
                )
            store = SQLStore(engine, **settings)
        else:
            store = SQLStore.with_url(
                DEFAULT_URL if url is None else url,
                engine_options=engine_options,
                transaction_pooling=transaction_pooling,
                **settings,
            )
        self._store = store
        self._cleanup_task: asyncio.Task[None] | None = None

    @property
    def store(self) -> SQLStore:
        """The parent store: every store of the plugin is one of its namespaces."""
        return self._store

    @property
    def store_names(self) -> tuple[str, ...]:
        """The names registered with the app."""
        return self._store_names

    @property
    def cleanup_interval(self) -> float | None:
        """Seconds between background cleanups, ``None`` when off."""
        return self._cleanup_interval

    def on_error_for(self, name: str) -> OnError:
        """The ``on_error`` of the store of ``name``."""
        return self._on_error.get(name, self._on_error_other)

    def store_for(self, name: str) -> SQLStore:
        """The store registered (or registrable) under ``name``: a namespace of the table, with the
        ``on_error`` configured for that name."""
        return self._store.with_namespace(name, on_error=self.on_error_for(name))

    def _default_factory(self, name: str) -> Store:
        return self.store_for(name)

    # -- Litestar hooks ----------------------------------------------------------------------------

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        """Register the stores (keeping the app's own) and the lifespan of engine and cleanup."""
        stores = app_config.stores
        if isinstance(stores, StoreRegistry):
            for name in self._store_names:
                try:
                    stores.register(name, self.store_for(name))
                except ValueError:  # the app registered a store of that name: it wins
                    continue
            # StoreRegistry has no public accessor for its factory; replace only Litestar's default
            if stores._default_factory is default_default_factory:
                stores._default_factory = self._default_factory
        else:
            registered: dict[str, Store] = {name: self.store_for(name) for name in self._store_names}
            registered.update(stores or {})
            app_config.stores = StoreRegistry(registered, default_factory=self._default_factory)
        app_config.lifespan = [*app_config.lifespan, self.lifespan]
        return app_config

    def on_cli_init(self, cli: Group) -> None:
        """Add the ``sqlsession`` command group (``delete-expired``, ``stats``) to ``litestar``."""
        from .cli import litestar_group

        cli.add_command(litestar_group(lambda app: app.plugins.get(type(self)).store))

    @asynccontextmanager
    async def lifespan(self, app: Litestar | None = None) -> AsyncIterator[None]:
        """Check the table (``check_on_startup``), run the background cleanup while the app runs,
        dispose an engine the plugin created."""
        if self._check_on_startup:
            try:
                await self._store.check()
            except BaseException:
                await self._store.close()
                raise
        if self._cleanup_interval is not None and self._cleanup_task is None:
            self._cleanup_task = asyncio.create_task(self._cleanup_loop(self._cleanup_interval))
        try:
            yield
        finally:
            task, self._cleanup_task = self._cleanup_task, None
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            await self._store.close()

    async def _cleanup_loop(self, interval: float) -> None:
        """Delete expired entries every ``interval`` seconds +/- 50%; errors are logged, never raised.

        One loop per plugin, so runs never overlap in a process; several processes running it on
        one database only delete the same expired rows (each batch is its own statement).
        """
        while True:
            await asyncio.sleep(interval * random.uniform(0.5, 1.5))
            try:
                deleted = await self._store.delete_expired()
            except Exception:
                logger.exception("sqlsession: deleting expired entries failed; trying again next interval")
            else:
                logger.debug("sqlsession: deleted %d expired entries", deleted)


def _on_error_by_name(value: OnError | Mapping[str, OnError]) -> tuple[OnError, dict[str, OnError]]:
    """The ``on_error`` of names not listed, and of each listed name."""
    if isinstance(value, str):
        return check_on_error(value), {}
    if not isinstance(value, Mapping):
        kind = type(value).__name__
        raise TypeError(f"on_error must be 'raise', 'miss' or a mapping of store names to them, not {kind}")
    by_name = dict(DEFAULT_ON_ERROR)
    for name, choice in value.items():
        if not isinstance(name, str):
            raise TypeError(f"on_error's store names must be str, not {type(name).__name__}")
        by_name[name] = check_on_error(choice, f"on_error[{name!r}]")
    return "raise", by_name


def _interval(value: float | timedelta | None) -> float | None:
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"cleanup_interval must be None, seconds or a timedelta, not {type(value).__name__}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"cleanup_interval must be a positive duration, not {value!r}")
    return float(seconds)
