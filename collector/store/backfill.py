"""Fill what ingest keeps beside the inventory rows, for rows written before it kept them.

A database from before the column copies (models.name, .format, ... and processes.runtime,
.gpu_*), the digest summary and the search index has the rows but none of those: this
computes each from the JSON fields, with the same pure functions ingest uses, a batch of
rows at a time, then recounts digests and hosts and builds the search index. A migration
runs it once; running it again changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.engine import Connection

from collector.store import digests, schema, textsearch
from collector.store.inventory import model_columns, process_columns

BATCH = 5000


def fill_inventory(conn: Connection) -> None:
    """Column copies of every model and process row, the digests, host counts, the index."""
    _fill(conn, schema.models, model_columns)
    _fill(conn, schema.processes, process_columns)
    digests.rebuild(conn)
    textsearch.drop(conn)  # built from path_key and name, which were only just filled
    textsearch.ensure(conn)


def _fill(
    conn: Connection, table: Table, columns: Callable[[Mapping[str, object]], dict[str, object]]
) -> None:
    names = list(columns({}))
    statement = (
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values({name: bindparam(f"b_{name}") for name in names})
    )
    after = 0
    while True:
        rows = conn.execute(
            select(table.c.id, table.c.fields)
            .where(table.c.id > after)
            .order_by(table.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        values = []
        for row in rows:
            copied = columns(json.loads(row.fields))
            values.append({"b_id": row.id, **{f"b_{k}": v for k, v in copied.items()}})
        conn.execute(statement, values)
        after = rows[-1].id
