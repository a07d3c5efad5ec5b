"""`shadowai-collector db upgrade|current`: the store's schema revision, by hand.

`serve` and every other command upgrade on open anyway; `db upgrade` lets an operator do it
ahead of a rollout, and `db current` says where a database stands without changing it.
"""

from __future__ import annotations

import argparse

from sqlalchemy.exc import OperationalError

from collector.store import migrate
from collector.store.engine import StoreUnavailable, create_store_engine, shown_url


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    db = sub.add_parser("db", parents=[common], help="the database's schema revision")
    actions = db.add_subparsers(dest="action", required=True)
    actions.add_parser("upgrade", parents=[common], help="upgrade the tables to this version")
    actions.add_parser("current", parents=[common], help="print the revision, change nothing")


def run(action: str, url: str) -> int:
    engine = create_store_engine(url, None)
    try:
        if action == "upgrade":
            before, after = migrate.upgrade(engine, None)
            print(
                f"at revision {after}"
                if before == after
                else f"upgraded {before or 'empty'} -> {after}"
            )
            return 0
        with engine.connect() as conn:
            print(describe(migrate.current(conn, None), migrate.head()))
        return 0
    except OperationalError as exc:
        raise StoreUnavailable(shown_url(url), exc) from None
    finally:
        engine.dispose()


def describe(revision: str | None, head: str) -> str:
    """One line: where the database stands against this collector's newest revision."""
    if revision is None:
        return f"no revision (empty, or from before migrations); this collector's is {head}"
    if revision == head:
        return f"{revision} (newest)"
    if migrate.known(revision):
        return f"{revision}; this collector's newest is {head}: run `db upgrade`"
    return f"{revision}: newer than this collector knows (its newest is {head})"
