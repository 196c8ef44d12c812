"""Commands on the store's table, the same in ``python -m sqlsession`` and ``litestar sqlsession``.

- ``upgrade``: create the table (or bring it to the newest revision) with the bundled revisions.
- ``downgrade``: drop it, after a confirmation that ``--yes`` skips.
- ``current``: the revision the table is at, or "no table".
- ``stats``: rows in all, expired, per namespace.
- ``delete-expired``: delete the expired entries of the whole table.
- ``reseal``: rewrite the live values under the first encryption key (keys from
  ``$SQLSESSION_ENCRYPTION_KEYS``; with the plugin, the app's), so that an old key can be dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import URL

from . import _dialects, _migrate
from ._sealing import ENCRYPTION_KEYS_ENV, parse_encryption_keys
from .errors import StoreError, upgrade_hint
from .schema import DEFAULT_TABLE_NAME, HEAD_REVISION
from .store import DEFAULT_URL, RESEAL_BATCH_SIZE, SQLStore, StoreStats

if TYPE_CHECKING:
    import click
    from litestar import Litestar

__all__ = ("format_stats", "litestar_group", "main")

DESCRIPTION = (
    "Manage the sqlsession table: create, upgrade or drop it with the bundled revisions, show its "
    "revision and its rows, delete expired entries (e.g. from cron)."
)
URL_HELP = "database URL (default: $SQLSESSION_URL, else the embedded default sqlite:///sqlsession.db)"
TABLE_HELP = "table name (default: $SQLSESSION_TABLE, else litestar_store)"
BATCH_HELP = f"rows read per statement (default: {RESEAL_BATCH_SIZE})"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _namespace_label(path: tuple[str, ...]) -> str:
    if not path:
        return "(root)"
    plain = all(name and name.isprintable() and "/" not in name for name in path)
    return "/".join(path) if plain else "/".join(repr(name) for name in path)


def format_stats(table: str, stats: StoreStats) -> str:
    """What ``stats`` prints: rows in all, expired, and per namespace."""
    lines = [f"table {table}: {_count(stats.rows, 'row')}, {stats.expired} expired"]
    lines += [
        f"  {_namespace_label(path)}: {_count(counts.rows, 'row')}, {counts.expired} expired"
        for path, counts in stats.namespaces.items()
    ]
    return "\n".join(lines)


# -- the commands: each runs on a root store (the whole table) and returns what to print ----------


async def _upgrade(store: SQLStore) -> str:
    table = store.table.name
    before = await _migrate.state(store.engine, table)
    await _migrate.upgrade(store.engine, table)
    if before.exists and before.revisions == (HEAD_REVISION,):
        return f"{table}: already at {HEAD_REVISION} (head)"
    return f"{table}: upgraded to {HEAD_REVISION} (head)"


async def _downgrade(store: SQLStore) -> str:
    table = store.table.name
    before = await _migrate.state(store.engine, table)
    if not before.exists and not before.revisions:
        return f"{table}: no table, nothing to drop"
    if not before.own:
        where = (
            "your app's alembic_version records it: run `alembic downgrade sqlsession@base` in your app"
            if before.revisions
            else "drop it yourself if you mean to"
        )
        raise StoreError(
            f"the table {table} was not made by sqlsession's migrations here: nothing dropped; {where}"
        )
    await _migrate.downgrade(store.engine, table)
    return f"{table}: dropped"


async def _current(store: SQLStore) -> str:
    table = store.table.name
    return f"{table}: {(await _migrate.state(store.engine, table)).describe()}"


async def _stats(store: SQLStore) -> str:
    return format_stats(store.table.name, await store.stats())


async def _delete_expired(store: SQLStore) -> str:
    deleted = await store.delete_expired()
    entries = "entry" if deleted == 1 else "entries"
    return f"deleted {deleted} expired {entries} from {store.table.name}"


async def _reseal(store: SQLStore, batch_size: int = RESEAL_BATCH_SIZE) -> str:
    resealed = await store.reseal(batch_size=batch_size)
    ids = store.encryption_key_ids
    under = f" under key id {ids[0]}" if ids else ""
    return f"resealed {_count(resealed, 'row')} of {store.table.name}{under}"


Command = Callable[[SQLStore], Awaitable[str]]
# name -> (what it runs, help, whether it may create the database)
_COMMANDS: dict[str, tuple[Command, str, bool]] = {
    "upgrade": (_upgrade, "Create the table, or upgrade it to the newest revision.", True),
    "downgrade": (_downgrade, "Drop the table and everything in it (asks first; --yes does not).", False),
    "current": (_current, "Print the revision the table is at, or 'no table'.", False),
    "stats": (_stats, "Print the rows of the table: in all, expired, per namespace.", False),
    "delete-expired": (
        _delete_expired,
        "Delete the expired entries of the whole table; print how many.",
        False,
    ),
    "reseal": (
        _reseal,
        "Rewrite the live values under the first encryption key, compressed as configured, in "
        "batches beside live traffic; print how many. Keys: $SQLSESSION_ENCRYPTION_KEYS.",
        False,
    ),
}


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _confirm_drop(table: str, url: URL) -> bool:
    question = (
        f"Drop the table {table} at {url.render_as_string(hide_password=True)} and everything in it? [y/N] "
    )
    try:
        return input(question).strip().lower() in ("y", "yes")
    except EOFError:
        return False


async def _run_on(store: SQLStore, command: Command) -> str:
    async with store:
        return await command(store)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sqlsession COMMAND [--url URL] [--table NAME]``; exit status 1 on failure."""
    parser = argparse.ArgumentParser(prog="python -m sqlsession", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_text, _creates) in _COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--url", default=None, help=URL_HELP)
        sub.add_argument("--table", default=None, help=TABLE_HELP)
        sub.add_argument(
            "--transaction-pooling",
            action="store_true",
            help="the URL is a pooler in transaction pooling mode (PgBouncer's pool_mode = transaction)",
        )
        if name == "downgrade":
            sub.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        if name == "reseal":
            sub.add_argument("--batch-size", type=int, default=RESEAL_BATCH_SIZE, help=BATCH_HELP)
            sub.add_argument(
                "--compress-min-size",
                type=int,
                default=None,
                help="compress values of at least this many bytes (when smaller); default: none",
            )
            sub.add_argument(
                "--read-unsealed",
                action="store_true",
                help="also seal the values stored without encryption (they are trusted: see the README)",
            )
    args = parser.parse_args(argv)
    # the error is printed below; without logging configured, the store's log line would repeat it
    logging.getLogger("sqlsession").addHandler(logging.NullHandler())
    command, _, creates = _COMMANDS[args.command]
    url_text = args.url or os.environ.get("SQLSESSION_URL") or DEFAULT_URL
    table = args.table or os.environ.get("SQLSESSION_TABLE") or DEFAULT_TABLE_NAME
    try:
        url = _dialects.async_url(url_text)
        sealing = _sealing_options(args) if args.command == "reseal" else {}
        if args.command == "reseal":
            command = functools.partial(_reseal, batch_size=args.batch_size)
        store = SQLStore.with_url(  # no connection yet
            url, table_name=table, namespace=None, transaction_pooling=args.transaction_pooling, **sealing
        )
        missing = None if creates else _dialects.missing_database_file(url)
        if missing is not None:
            raise FileNotFoundError(
                f"no database file {missing} (a mistyped path? {upgrade_hint(url, table)} creates it)"
            )
        if args.command == "downgrade" and not args.yes and not _confirm_drop(table, url):
            print("nothing dropped")
            return 1
        print(asyncio.run(_run_on(store, command)))
    except Exception as error:  # one line, no traceback: this runs from cron
        print(f"error: {_one_line(error)}", file=sys.stderr)
        return 1
    return 0


def _sealing_options(args: argparse.Namespace) -> dict[str, Any]:
    """The reseal command's sealing keywords: keys from the environment (never the command line)."""
    keys = parse_encryption_keys(os.environ.get(ENCRYPTION_KEYS_ENV, ""))
    if not keys and args.compress_min_size is None:
        raise ValueError(
            f"nothing to reseal with: set {ENCRYPTION_KEYS_ENV} (comma-separated keys, each base64 "
            "or 64 hex digits of 32 bytes, the first seals) or pass --compress-min-size"
        )
    return {
        "encryption_keys": keys,
        "compress_min_size": args.compress_min_size,
        "read_unsealed": args.read_unsealed,
    }


def litestar_group(app_store: Callable[[Litestar], SQLStore]) -> click.Group:
    """The ``litestar sqlsession`` command group, working on the table of ``app_store(app)``, the
    parent store of the app's ``SQLStorePlugin``."""
    import click
    from litestar.cli._utils import LitestarGroup

    @click.group(cls=LitestarGroup, name="sqlsession")
    def group() -> None:
        """sqlsession: the app's SQL store table."""

    def execute(app: Litestar, command: Command) -> None:
        root = app_store(app)
        # the whole table, with the app's compression and keys (reseal)
        store = root._whole_table()

        async def whole_table() -> str:
            try:
                return await command(store)
            finally:
                await root.close()

        try:
            click.echo(asyncio.run(whole_table()))
        except Exception as error:
            raise click.ClickException(_one_line(error)) from error

    def make(name: str, command: Command, help_text: str) -> None:
        if name == "reseal":

            @click.option("--batch-size", type=int, default=RESEAL_BATCH_SIZE, help=BATCH_HELP)
            def reseal(app: Litestar, batch_size: int) -> None:
                execute(app, functools.partial(_reseal, batch_size=batch_size))

            group.command(name=name, help=help_text)(reseal)
            return
        if name == "downgrade":

            @click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
            def drop(app: Litestar, yes: bool) -> None:
                root = app_store(app)
                url = root.engine.url.render_as_string(hide_password=True)
                if not yes:
                    click.confirm(
                        f"Drop the table {root.table.name} at {url} and everything in it?", abort=True
                    )
                execute(app, command)

            group.command(name=name, help=help_text)(drop)
            return

        def run(app: Litestar) -> None:
            execute(app, command)

        group.command(name=name, help=help_text)(run)

    for name, (command, help_text, _) in _COMMANDS.items():
        make(name, command, help_text)
    return group
