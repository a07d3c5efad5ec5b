"""The dashboard in a real headless Chromium, served by a real uvicorn on a free port."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import Dialog, sync_playwright

from collector.store import Store
from collector.web.app import create_app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STARTUP_LIMIT_S = 30.0

pytestmark = pytest.mark.browser


def _require_chromium() -> None:
    if Path(CHROMIUM).exists():
        return
    reason = f"{CHROMIUM} is missing: apt-get install chromium chromium-driver"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def dashboard(tmp_path: Path, seed_fleet: Callable[[Store], Any]) -> Iterator[tuple[str, Any]]:
    """(base URL, seeded fleet) of the app served on 127.0.0.1, port chosen by the OS."""
    store = Store.open(f"sqlite:///{tmp_path / 'collector.db'}")
    fleet = seed_fleet(store)
    config = uvicorn.Config(create_app(store), host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP_LIMIT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                pytest.fail("uvicorn did not start")
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}", fleet
    finally:
        server.should_exit = True
        thread.join()
        store.close()


def test_alerts_and_models_pages_show_seeded_data(dashboard: tuple[str, Any]) -> None:
    _require_chromium()
    base, fleet = dashboard
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            dialogs: list[str] = []

            def on_dialog(dialog: Dialog) -> None:
                dialogs.append(dialog.message)
                dialog.dismiss()

            page.on("dialog", on_dialog)

            page.goto(f"{base}/alerts")
            row = page.locator(f'#alerts tr[data-rule-id="{fleet.rule_id}"]')
            assert row.count() == 1
            assert fleet.alert_title in row.inner_text()
            assert row.get_attribute("data-status") == "open"

            page.goto(f"{base}/models")
            model = page.locator("#models tbody tr", has_text="Meta-Llama-3-8B-Instruct")
            assert model.count() == 1
            assert model.get_attribute("data-path") == fleet.model_path
            assert "8B" in model.inner_text()
            # The hostile path is shown as text and never runs.
            hostile = page.locator(f'#models tr[data-path="{fleet.hostile_path}"]')
            assert fleet.hostile_path in hostile.inner_text()
            assert dialogs == []
        finally:
            browser.close()
