"""The dashboard in a real headless Chromium, served by a real uvicorn on a free port, signed
in through the login form."""

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
from tests.collector.web.web_kit import PASSWORDS, add_user, browser_log_in

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
    add_user(store, "alice", "analyst")
    app = create_app(store, passwords=PASSWORDS)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
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

            browser_log_in(page, f"{base}/alerts", "alice")
            assert page.url == f"{base}/alerts"
            row = page.locator(f'#alerts tr[data-rule-id="{fleet.rule_id}"]')
            assert row.count() == 1
            assert fleet.alert_title in row.inner_text()
            assert row.get_attribute("data-status") == "open"

            page.goto(f"{base}/models/files")
            model = page.locator("#files tbody tr", has_text="Meta-Llama-3-8B-Instruct")
            assert model.count() == 1
            assert model.get_attribute("data-path") == fleet.model_path
            assert "8B" in model.inner_text()
            # The hostile path is shown as text and never runs.
            hostile = page.locator(f'#files tr[data-path="{fleet.hostile_path}"]')
            assert fleet.hostile_path in hostile.inner_text()
            assert dialogs == []
        finally:
            browser.close()


def test_a_wrong_password_then_the_right_one_then_log_out(dashboard: tuple[str, Any]) -> None:
    _require_chromium()
    base, _fleet = dashboard
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            browser_log_in(page, f"{base}/models", "alice", "not the password at all")
            assert page.locator("#login-error").inner_text() == "Wrong username or password."
            assert page.locator("#signed-in").count() == 0
            page.fill("#password", "correct horse battery staple")
            with page.expect_navigation():
                page.click("#login button[type=submit]")
            assert page.url == f"{base}/models"
            assert page.locator("#signed-in").inner_text() == "alice (analyst)"
            with page.expect_navigation():
                page.click("#logout button[type=submit]")
            assert page.url.startswith(f"{base}/login")
            page.goto(f"{base}/models")
            assert page.url.startswith(f"{base}/login?next=")
            assert page.locator("#models").count() == 0
        finally:
            browser.close()


def test_inventory_pages_draw_their_charts_without_breaking_the_csp(
    dashboard: tuple[str, Any],
) -> None:
    """Chromium reports a CSP refusal (an inline style, say) as a console error."""
    _require_chromium()
    base, fleet = dashboard
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            failed: list[str] = []
            page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
            browser_log_in(page, f"{base}/", "alice")
            bars = page.locator("#chart-format rect.bar")
            assert bars.count() == 1
            # the stylesheet, not the markup, colours the bars
            assert bars.first.evaluate("e => getComputedStyle(e).fill") == "rgb(36, 86, 199)"
            page.goto(f"{base}/hosts/{fleet.agent_id}")
            assert page.locator("#host-models tbody tr").count() == 2
            page.click("#host-models a")
            assert page.locator("#digest").get_attribute("data-sha256") == "ab" * 32
            page.fill("header form.search input", "llama")
            page.click("header form.search button")
            assert page.locator("#hits-path li").count() == 1
            assert failed == []
            # Chromium asks for /favicon.ico on its own (there is none) and says so.
            assert [e for e in errors if not e.startswith("Failed to load resource")] == []
        finally:
            browser.close()
