"""The collector's store: the only module with SQL (SQLite embedded, PostgreSQL for a fleet)."""

from collector.store.filters import (
    AgentFilter,
    DigestFilter,
    EventFilter,
    HostFilter,
    ModelFilter,
    ProcessFilter,
)
from collector.store.records import AgentRecord, AgentState, Gap, NewAlert, StoredEvent
from collector.store.store import ALERT_STATUSES, ConcurrentUpdate, Store

__all__ = [
    "ALERT_STATUSES",
    "AgentFilter",
    "AgentRecord",
    "AgentState",
    "ConcurrentUpdate",
    "DigestFilter",
    "EventFilter",
    "Gap",
    "HostFilter",
    "ModelFilter",
    "NewAlert",
    "ProcessFilter",
    "Store",
    "StoredEvent",
]
