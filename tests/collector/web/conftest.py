"""Web fixtures: a dashboard client already signed in (see web_kit.py for the pieces)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from collector.store import Store
from tests.collector.web.web_kit import sign_in


@pytest.fixture
def signed_in(store: Store) -> Callable[..., httpx.Client]:
    """signed_in(client, role="admin"): log a client in as a fresh user of that role."""

    def sign(client: httpx.Client, role: str = "admin") -> httpx.Client:
        return sign_in(client, store, role)

    return sign
