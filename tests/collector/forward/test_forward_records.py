"""HEC records and RFC 5424 messages from hostile events: valid, escaped, within limits."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from collector.forward.records import (
    SD_ID,
    fit,
    flat_alert,
    frame,
    hec_record,
    sd_value,
    syslog_message,
)

BOM = b"\xef\xbb\xbf"
NOW = 1_796_378_400.0
HEADER = re.compile(
    rb"<(\d{1,3})>1 (\S+) ([\x21-\x7e]{1,255}) ([\x21-\x7e]{1,48}) ([\x21-\x7e]{1,128})"
    rb" ([\x21-\x7e]{1,32}) "
)
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def parse_sd(data: bytes) -> tuple[list[tuple[str, list[tuple[str, str]]]], bytes]:
    """Strict RFC 5424 STRUCTURED-DATA reader: the elements, and the bytes after them."""
    if data.startswith(b"- "):
        return [], data[2:]
    elements = []
    text = data.decode("utf-8")
    i = 0
    while text[i] == "[":
        j = i + 1
        while text[j] not in " ]":
            j += 1
        sd_id, params = text[i + 1 : j], []
        i = j
        while text[i] == " ":
            name_end = text.index("=", i)
            name = text[i + 1 : name_end]
            assert re.fullmatch(r"[\x21-\x7e]{1,32}", name) and not set(name) & set('= ]"')
            assert text[name_end + 1] == '"'
            k, value = name_end + 2, []
            while text[k] != '"':
                if text[k] == "\\" and text[k + 1] in '"\\]':
                    value.append(text[k + 1])
                    k += 2
                    continue
                assert text[k] != "]", "unescaped ] in a PARAM-VALUE"
                value.append(text[k])
                k += 1
            params.append((name, "".join(value)))
            i = k + 1
        assert text[i] == "]"
        elements.append((sd_id, params))
        i += 1
    assert text[i] == " "
    return elements, text[i + 1 :].encode()


def parse_syslog(message: bytes) -> dict[str, Any]:
    header = HEADER.match(message)
    assert header is not None, message[:200]
    pri, stamp, host, app, _procid, msgid = header.groups()
    assert 0 <= int(pri) <= 191
    assert TIMESTAMP.fullmatch(stamp.decode())
    elements, msg = parse_sd(message[header.end() :])
    assert msg.startswith(BOM)
    return {
        "pri": int(pri),
        "host": host.decode(),
        "app": app.decode(),
        "msgid": msgid.decode(),
        "sd": elements,
        "msg": msg[len(BOM) :].decode("utf-8"),
    }


EVENT: dict[str, object] = {
    "@timestamp": "2026-12-04T10:00:00Z",
    "event.dataset": "shadowai.model_file",
    "host.name": "laptop-7",
    "file.path": "/models/a].gguf",
    "ai.model.unsafe_reasons": ["os.system", 'quote"d'],
    "ai.model.unsafe": True,
}


def test_a_json_message_carries_the_whole_event_after_the_bom() -> None:
    parsed = parse_syslog(
        syslog_message(
            EVENT, kind="event", now_s=NOW, facility=16, app_name="shadowai", structured=False
        )
    )
    assert parsed["pri"] == 16 * 8 + 6
    assert (parsed["host"], parsed["app"], parsed["msgid"]) == (
        "laptop-7",
        "shadowai",
        "model_file",
    )
    assert json.loads(parsed["msg"]) == EVENT


def test_structured_data_escapes_quotes_backslashes_and_brackets() -> None:
    message = syslog_message(
        EVENT, kind="event", now_s=NOW, facility=16, app_name="shadowai", structured=True
    )
    assert rb'file.path="/models/a\].gguf"' in message
    ((sd_id, params),) = parse_syslog(message)["sd"]
    assert sd_id == SD_ID
    values = dict(params)
    assert values["file.path"] == "/models/a].gguf"
    assert json.loads(values["ai.model.unsafe_reasons"]) == ["os.system", 'quote"d']
    assert values["ai.model.unsafe"] == "true"


def test_an_alert_maps_its_level_to_a_syslog_severity() -> None:
    alert = flat_alert(
        rule_id="r-1",
        rule_title="Pickle",
        level="critical",
        agent_id="a",
        host_name="h",
        summary="/x.pkl",
        event_seq=9,
        at=datetime(2026, 12, 4, 10, tzinfo=UTC),
    )
    parsed = parse_syslog(
        syslog_message(alert, kind="alert", now_s=NOW, facility=16, app_name="s", structured=True)
    )
    assert parsed["pri"] == 16 * 8 + 2
    assert parsed["msgid"] == "alert"
    assert parsed["msg"] == "/x.pkl"


def test_octet_counting_prefixes_the_byte_length() -> None:
    assert frame("é".encode()) == b"2 \xc3\xa9"


def test_sd_value_escapes_exactly_the_three_characters() -> None:
    assert sd_value('a"b\\c]d[e') == 'a\\"b\\\\c\\]d[e'


def test_a_huge_value_is_shortened_and_marked() -> None:
    event = dict(EVENT, **{"process.command_line": "x" * 100_000})
    record = json.loads(
        hec_record(event, kind="event", now_s=NOW, source="s", max_event_bytes=4096)
    )
    body = record["event"]
    assert body["shadowai.truncated"] is True
    assert body["file.path"] == "/models/a].gguf"
    assert len(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()) <= 4096


def test_a_record_without_a_usable_timestamp_takes_the_send_time() -> None:
    record = json.loads(
        hec_record({"@timestamp": "yesterday"}, kind="event", now_s=NOW, source="s")
    )
    assert (record["time"], record["host"]) == (NOW, "unknown")


HOSTILE = st.text(st.characters(codec=None, categories=None, exclude_characters=None), max_size=60)
HUGE = st.builds(
    lambda c, n: c * n,
    st.sampled_from(["]", '"', "\\", "\x00", "é", "\ud800", "𝄞"]),
    st.integers(0, 12_000),
)
VALUES = st.one_of(
    HOSTILE,
    HUGE,
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.booleans(),
    st.none(),
    st.lists(HOSTILE | HUGE, max_size=70),
)
EVENTS = st.dictionaries(
    HOSTILE | st.sampled_from(["host.name", "@timestamp", "message"]), VALUES, max_size=12
)


@settings(max_examples=150, deadline=None)
@given(
    EVENTS, st.sampled_from(["event", "alert"]), st.booleans(), st.integers(2048, 20_000), HOSTILE
)
def test_any_event_gives_a_valid_syslog_message_within_its_limit(
    event: dict[str, object], kind: str, structured: bool, limit: int, app: str
) -> None:
    message = syslog_message(
        event,
        kind=kind,
        now_s=NOW,
        facility=23,
        app_name=app,
        structured=structured,
        max_bytes=limit,
    )
    assert len(message) <= limit
    parsed = parse_syslog(message)
    if not structured:
        assert isinstance(json.loads(parsed["msg"]), dict)


@settings(max_examples=150, deadline=None)
@given(EVENTS, st.integers(1024, 50_000), HOSTILE)
def test_any_event_gives_a_hec_record_within_its_limit(
    event: dict[str, object], limit: int, index: str
) -> None:
    record = json.loads(
        hec_record(
            event, kind="event", now_s=NOW, source="s", index=index or None, max_event_bytes=limit
        )
    )
    assert set(record) >= {"time", "host", "source", "sourcetype", "event"}
    size = len(json.dumps(record["event"], ensure_ascii=False, separators=(",", ":")).encode())
    assert size <= limit


@settings(max_examples=100, deadline=None)
@given(EVENTS, st.integers(64, 10_000))
def test_fit_keeps_a_small_event_whole_and_bounds_any_other(
    event: dict[str, object], limit: int
) -> None:
    fitted = fit(event, limit)
    size = len(json.dumps(fitted, ensure_ascii=False, separators=(",", ":")).encode())
    assert size <= limit
    if "shadowai.truncated" not in fitted:
        assert len(fitted) == len(event)
