"""Commands: ``delete-expired`` and ``stats``, in ``litestar sqlsession ...`` and ``python -m sqlsession``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from .schema import DEFAULT_TABLE_NAME
from .store import SQLStore, StoreStats

if TYPE_CHECKING:
    import click

__all__ = ("format_stats", "litestar_group", "main")


def _namespace_label(path: tuple[str, ...]) -> str:
    if not path:
        return "(root)"
    plain = all(name and name.isprintable() and "/" not in name for name in path)
    return "/".join(path) if plain else "/".join(repr(name) for name in path)


def format_stats(table: str, stats: StoreStats) -> str:
    """What ``stats`` prints: rows in all, expired, and per namespace."""
    lines = [f"table {table}: {stats.rows} rows, {stats.expired} expired"]
    lines += [
        f"  {_namespace_label(path)}: {counts.rows} rows, {counts.expired} expired"
        for path, counts in stats.namespaces.items()
    ]
    return "\n".join(lines)


async def _delete_expired(store: SQLStore) -> str:
    deleted = await store.delete_expired()
    return f"deleted {deleted} expired entries from {store.table.name}"


async def _stats(store: SQLStore) -> str:
    return format_stats(store.table.name, await store.stats())


async def _run(store: SQLStore, command: Callable[[SQLStore], Awaitable[str]]) -> str:
    async with store:
        return await command(store)


_COMMANDS: dict[str, tuple[Callable[[SQLStore], Awaitable[str]], str]] = {
    "delete-expired": (_delete_expired, "Delete the expired entries of the whole table; print how many."),
    "stats": (_stats, "Print the rows of the table: in all, expired, per namespace."),
}


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sqlsession {delete-expired,stats} --url URL [--table NAME]`` (e.g. from cron)."""
    parser = argparse.ArgumentParser(prog="python -m sqlsession", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text) in _COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--url", required=True, help="database URL, e.g. postgresql://user@host/db")
        sub.add_argument("--table", default=DEFAULT_TABLE_NAME, help="table name (default: %(default)s)")
    args = parser.parse_args(argv)
    command = _COMMANDS[args.command][0]
    try:
        store = SQLStore.with_url(args.url, table_name=args.table, namespace=None)
        print(asyncio.run(_run(store, command)))
    except Exception as error:  # one line, no traceback: this runs from cron
        print(f"error: {_one_line(error)}", file=sys.stderr)
        return 1
    return 0


def litestar_group() -> click.Group:
    """The ``litestar sqlsession`` command group, working on the app's ``SQLStorePlugin``."""
    import click
    from litestar import Litestar
    from litestar.cli._utils import LitestarGroup

    from .plugin import SQLStorePlugin

    @click.group(cls=LitestarGroup, name="sqlsession")
    def group() -> None:
        """sqlsession: the app's SQL store table."""

    def make(name: str, command: Callable[[SQLStore], Awaitable[str]], help_text: str) -> None:
        def run(app: Litestar) -> None:
            plugin = app.plugins.get(SQLStorePlugin)
            root = plugin.store
            store = SQLStore(root.engine, table_name=root.table.name, namespace=None)

            async def whole_table() -> str:
                try:
                    return await command(store)
                finally:
                    await store.close()
                    await root.close()

            try:
                click.echo(asyncio.run(whole_table()))
            except Exception as error:
                raise click.ClickException(_one_line(error)) from error

        group.command(name=name, help=help_text)(run)

    for name, (command, help_text) in _COMMANDS.items():
        make(name, command, help_text)
    return group
