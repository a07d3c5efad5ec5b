"""Alembic revisions of the store's tables; run through collector.store.migrate."""
