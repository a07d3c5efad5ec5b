"""Check the fleet bench's acknowledged envelopes against the collector's store.

One grouped query over a temporary table of what was acknowledged, so that 20,000 agents
and a few million events take one pass in the database rather than a round trip per agent
and every row in Python.
"""

from __future__ import annotations

from sqlalchemy import create_engine, text

_EXPECTED = "fleet_expected"
_CHUNK = 5000
_CREATE = (
    f"CREATE TEMPORARY TABLE {_EXPECTED} "
    "(agent_id TEXT PRIMARY KEY, first_seq BIGINT NOT NULL, last_seq BIGINT NOT NULL)"
)
_INSERT = f"INSERT INTO {_EXPECTED} (agent_id, first_seq, last_seq) VALUES (:a, :f, :l)"
# Per stored (agent, seq): how many rows, and whether it was acknowledged in this run.
_COUNT = f"""
SELECT count(*), coalesce(sum(n - 1), 0), coalesce(sum(in_run), 0)
FROM (
    SELECT count(*) AS n,
           max(CASE WHEN e.seq BETWEEN x.first_seq AND x.last_seq THEN 1 ELSE 0 END) AS in_run
    FROM events e JOIN {_EXPECTED} x ON x.agent_id = e.agent_id
    GROUP BY e.agent_id, e.seq
) AS stored
"""


def check_store(url: str, first_seq: dict[str, int], acked_upto: dict[str, int]) -> dict[str, int]:
    """Every acknowledged (agent, seq) must be in `events` exactly once: count the rest.

    `lost`: acknowledged but not stored; `duplicates`: stored more than once; `stored`:
    distinct (agent, seq) of these agents in the store.
    """
    rows: list[dict[str, str | int]] = [
        {"a": agent_id, "f": first_seq[agent_id], "l": last}
        for agent_id, last in sorted(acked_upto.items())
    ]
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(_CREATE))
            for start in range(0, len(rows), _CHUNK):
                conn.execute(text(_INSERT), rows[start : start + _CHUNK])
            stored, duplicates, in_run = conn.execute(text(_COUNT)).one()
            conn.execute(text(f"DROP TABLE {_EXPECTED}"))
    finally:
        engine.dispose()
    expected = sum(last - first_seq[agent_id] + 1 for agent_id, last in acked_upto.items())
    return {"lost": expected - int(in_run), "duplicates": int(duplicates), "stored": int(stored)}
