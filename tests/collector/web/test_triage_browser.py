"""Triage and token administration in a real headless Chromium: plain forms under the strict
CSP, no script anywhere. Acknowledge and assign alerts in bulk, comment on one, create an
enrollment token (shown once) and revoke it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import Dialog, Page, sync_playwright

from collector.store import Store
from collector.web.app import create_app
from tests.collector.web.test_dashboard_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    STARTUP_LIMIT_S,
    _require_chromium,
)
from tests.collector.web.web_kit import PASSWORDS, add_user, browser_log_in, seed_alerts

pytestmark = pytest.mark.browser


@pytest.fixture
def served(tmp_path: Path, seed_fleet: Callable[[Store], Any]) -> Iterator[tuple[str, Store]]:
    store = Store.open(f"sqlite:///{tmp_path / 'collector.db'}")
    seed_fleet(store)
    seed_alerts(store, 4)
    add_user(store, "alice", "admin")
    app = create_app(store, ca_fingerprint="ab" * 32, passwords=PASSWORDS)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP_LIMIT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                pytest.fail("uvicorn did not start")
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}", store
    finally:
        server.should_exit = True
        thread.join()
        store.close()


def browse(work: Callable[[Page], None]) -> list[str]:
    """Run `work` on a fresh page; the dialogs any injected script opened (none, we hope)."""
    _require_chromium()
    dialogs: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()

            def on_dialog(dialog: Dialog) -> None:
                dialogs.append(dialog.message)
                dialog.dismiss()

            page.on("dialog", on_dialog)
            work(page)
        finally:
            browser.close()
    return dialogs


def test_acknowledge_and_assign_in_bulk_then_comment(served: tuple[str, Store]) -> None:
    base, store = served

    def work(page: Page) -> None:
        browser_log_in(page, f"{base}/alerts?status=open", "alice")
        page.check('input[name="alert_id"][value="1"]')
        page.check('input[name="alert_id"][value="2"]')
        page.select_option('#bulk select[name="status"]', "acknowledged")
        page.click('#bulk button[value="status"]')
        page.wait_for_url(f"{base}/alerts?status=open")
        assert page.locator('#alerts tr[data-alert-id="1"]').count() == 0
        page.goto(f"{base}/alerts?status=acknowledged")
        page.check('input[name="alert_id"][value="2"]')
        page.fill('#bulk input[name="assignee"]', "alice")
        page.click('#bulk button[value="assign"]')
        page.wait_for_url(f"{base}/alerts?status=acknowledged")
        assert "alice" in page.locator('#alerts tr[data-alert-id="2"] td.assignee').inner_text()
        page.click('#alerts tr[data-alert-id="1"] a')
        page.fill('#comment-form textarea[name="text"]', "<script>alert('x')</script> checked")
        page.click("#comment-form button")
        page.wait_for_url(f"{base}/alerts/1")
        assert "checked" in page.locator("#comments").inner_text()

    assert browse(work) == []
    assert [a["status"] for a in store.list_alerts() if a["id"] in (1, 2)] == ["acknowledged"] * 2


def test_create_a_token_once_and_revoke_it(served: tuple[str, Store]) -> None:
    base, store = served

    def work(page: Page) -> None:
        browser_log_in(page, f"{base}/tokens", "alice")
        page.fill('#create-token input[name="group"]', "lab")
        page.fill('#create-token input[name="uses"]', "2")
        page.click("#create-token button")
        token = page.locator("#new-token").inner_text()
        assert token.startswith("sae_")
        page.goto(f"{base}/tokens")
        assert token not in page.content()
        token_id = token.split("_")[1]
        page.click(f'#tokens tr[data-token-id="{token_id}"] button')
        page.wait_for_url(f"{base}/tokens")
        row = page.locator(f'#tokens tr[data-token-id="{token_id}"]')
        assert row.get_attribute("class") == "revoked"

    assert browse(work) == []
    (token,) = store.list_enrollment_tokens()
    assert token["revoked"] is True and token["group"] == "lab"
