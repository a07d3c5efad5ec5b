"""The rules page says which set is in force: when it loaded, why a change was refused, and
which exceptions expired; the API gives the same."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient

from collector.governance.live import LiveRules
from collector.server import rules_summary
from collector.store import NewAlert, Store
from collector.web.app import create_app
from collector.web.auth import mint_api_token
from tests.collector.web.web_kit import BASE_URL, PASSWORDS, sign_in

RULE = """\
title: gguf <weights>
id: 88888888-8888-4888-8888-888888888888
status: experimental
level: high
logsource: {product: shadowai, category: model_file}
detection:
  sel: {ai.model.format: gguf}
  condition: sel
"""
EXPIRED = """\
title: old lab exception
id: 99999999-9999-4999-8999-999999999999
owner: sec@example.com
reason: lab
expires: 2020-01-01
logsource: {product: shadowai, category: model_file}
filter:
  rules: [88888888-8888-4888-8888-888888888888]
  lab: {host.group: lab}
  condition: not lab
"""


def test_the_page_shows_the_refused_change_and_the_last_good_load(
    store: Store, tmp_path: Path
) -> None:
    (tmp_path / "r.yml").write_text(RULE)
    (tmp_path / "x.yml").write_text(EXPIRED)
    live = LiveRules(tmp_path)
    (tmp_path / "r.yml").write_text(RULE.replace("level: high", "level: <loud>") + "\n")
    live.check()
    live.check()
    app = create_app(
        store,
        rules_summary=lambda: rules_summary(live.current()),
        rules_status=live.status,
        passwords=PASSWORDS,
    )
    with TestClient(app, base_url=BASE_URL) as client:
        sign_in(client, store, "viewer")
        page = client.get("/rules").text
        assert 'id="rules-error"' in page and "level: &lt;loud&gt;" not in page
        assert "r.yml:4: level" in page
        assert 'data-rule-id="88888888-8888-4888-8888-888888888888"' in page
        assert "gguf &lt;weights&gt;" in page
        assert 'data-expired-id="99999999-9999-4999-8999-999999999999"' in page
        assert 'data-exception-id="99999999-9999-4999-8999-999999999999"' in page
        text, token_id, secret = mint_api_token()
        store.add_api_token(
            token_id=token_id, secret_sha256=secret, role="viewer", created_at=datetime.now(UTC)
        )
        status = client.get(
            "/api/v1/rules/status", headers={"Authorization": f"Bearer {text}"}
        ).json()
        assert status["loaded_at"] and status["error"] and status["expired"][0]["owner"]


def test_each_rule_shows_what_it_raised_and_sorts_by_it(store: Store, tmp_path: Path) -> None:
    (tmp_path / "r.yml").write_text(RULE)
    (tmp_path / "q.yml").write_text(
        RULE.replace(
            "88888888-8888-4888-8888-888888888888", "77777777-7777-4777-8777-777777777777"
        ).replace("gguf <weights>", "quiet rule")
    )
    live = LiveRules(tmp_path)
    rule_id = "88888888-8888-4888-8888-888888888888"
    at = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    store.raise_alerts(
        [NewAlert(rule_id, "gguf", "high", "a", "h", f"k{i}", i, "s", at) for i in range(3)]
    )
    store.set_alert_status(1, "resolved", by="user:alice")
    app = create_app(
        store, rules_summary=lambda: rules_summary(live.current()), passwords=PASSWORDS
    )
    with TestClient(app, base_url=BASE_URL) as client:
        sign_in(client, store, "viewer")
        page = client.get("/rules?sort=-alerts_total").text
        first = page.index(f'data-rule-id="{rule_id}"')
        assert first < page.index('data-rule-id="77777777-7777-4777-8777-777777777777"')
        row = page[first : page.index("</tr>", first)]
        assert '<td class="num" data-count="total"><a href="/alerts?rule=' in row
        assert ">3</a>" in row and ">2</a>" in row and "2026-11-30 09:00:00 UTC" in row
        text, token_id, secret = mint_api_token()
        store.add_api_token(
            token_id=token_id, secret_sha256=secret, role="viewer", created_at=datetime.now(UTC)
        )
        headers = {"Authorization": f"Bearer {text}"}
        body = client.get("/api/v1/rules?sort=-alerts_open&limit=1", headers=headers).json()
        (item,) = body["items"]
        assert (item["id"], item["alerts_total"], item["alerts_open"]) == (rule_id, 3, 2)
        assert item["last_match"] == at.isoformat() and body["next"] is not None
        rest = client.get(
            f"/api/v1/rules?sort=-alerts_open&limit=1&cursor={body['next']}", headers=headers
        ).json()
        assert [r["alerts_total"] for r in rest["items"]] == [0] and rest["next"] is None
        csv = client.get("/api/v1/rules?format=csv", headers=headers).text
        assert csv.startswith("id,title,level,dataset,action,tags,source,alerts_total")
