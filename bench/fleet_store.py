"""Check the fleet bench's acknowledged envelopes against the collector's store."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import bindparam, create_engine, text

_CHUNK = 500


def check_store(url: str, first_seq: dict[str, int], acked_upto: dict[str, int]) -> dict[str, int]:
    """Every acknowledged (agent, seq) must be in `events` exactly once: count the rest.

    `lost`: acknowledged but not stored; `duplicates`: stored more than once.
    """
    engine = create_engine(url)
    rows: Counter[tuple[str, int]] = Counter()
    query = text("SELECT agent_id, seq FROM events WHERE agent_id IN :ids").bindparams(
        bindparam("ids", expanding=True)
    )
    ids = sorted(acked_upto)
    try:
        with engine.connect() as conn:
            for start in range(0, len(ids), _CHUNK):
                for agent_id, seq in conn.execute(query, {"ids": ids[start : start + _CHUNK]}):
                    rows[(agent_id, int(seq))] += 1
    finally:
        engine.dispose()
    lost = sum(
        (agent_id, seq) not in rows
        for agent_id, last in acked_upto.items()
        for seq in range(first_seq[agent_id], last + 1)
    )
    return {
        "lost": lost,
        "duplicates": sum(n - 1 for n in rows.values()),
        "stored": len(rows),
    }
