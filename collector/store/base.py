"""The store's engine and its two kinds of transaction, shared by the parts of the Store."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from collector.errors import CollectorError
from collector.store.engine import WRITE_OPTION


class StoreBase:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._engine.connect() as conn:
            conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._engine.connect() as conn, conn.begin():
            yield conn

    @staticmethod
    @contextmanager
    def _unique(what: str) -> Iterator[None]:
        """Turn a unique-constraint violation into our error naming `what`."""
        try:
            yield
        except IntegrityError as exc:
            raise CollectorError(f"{what}: {exc.orig}") from None
