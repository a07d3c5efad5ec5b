"""The rules page in a real headless Chromium, with a live rule set whose last change was
refused: the error, the time of the last good load and the rules in force are visible."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import sync_playwright

from collector.governance.live import LiveRules
from collector.server import rules_summary
from collector.store import Store
from collector.web.app import create_app
from tests.collector.web.web_kit import PASSWORDS, add_user, browser_log_in

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run"]
STARTUP_LIMIT_S = 30.0
RULE = """\
title: GGUF <b>weights</b>
id: abababab-abab-4bab-8bab-abababababab
status: experimental
level: high
logsource: {product: shadowai, category: model_file}
detection:
  sel: {ai.model.format: gguf}
  condition: sel
"""


@pytest.fixture
def rules_page(tmp_path: Path) -> Iterator[tuple[str, LiveRules]]:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yml").write_text(RULE)
    live = LiveRules(rules)
    (rules / "r.yml").write_text(RULE.replace("level: high", "level: <script>x</script>") + "\n")
    live.check()
    live.check()
    store = Store.open(f"sqlite:///{tmp_path / 'collector.db'}")
    add_user(store, "vera", "viewer")
    app = create_app(
        store,
        rules_summary=lambda: rules_summary(live.current()),
        rules_status=live.status,
        passwords=PASSWORDS,
    )
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
        yield f"http://127.0.0.1:{port}", live
    finally:
        server.should_exit = True
        thread.join()
        store.close()


def test_a_refused_change_shows_with_the_set_still_in_force(
    rules_page: tuple[str, LiveRules],
) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium chromium-driver")
    base, live = rules_page
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            dialogs: list[str] = []
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            browser_log_in(page, f"{base}/rules", "vera")
            error = page.locator("#rules-error")
            assert error.count() == 1
            assert "r.yml:4: level" in error.inner_text()
            assert "still in force" in error.inner_text()
            loaded = page.locator("#rules-loaded-at").inner_text()
            assert loaded.startswith(str(live.status()["loaded_at"])[:10])
            row = page.locator('#rules tr[data-rule-id="abababab-abab-4bab-8bab-abababababab"]')
            assert "GGUF <b>weights</b>" in row.inner_text()  # shown as text, not markup
            assert dialogs == []
        finally:
            browser.close()
