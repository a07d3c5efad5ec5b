"""Forwarding against real listeners that go away and come back: nothing is lost."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from forward_listeners import HecListener, SyslogListener, TestPki, make_pki

from collector.forward import Forwarding, parse_config

TOKEN = "0b6b6cc5-1d8f-4b51-9c3c-6d1f3c1d2e4f"
BOM = b"\xef\xbb\xbf"


@pytest.fixture
def pki(tmp_path: Path) -> TestPki:
    return make_pki(tmp_path)


@pytest.fixture
def hec(pki: TestPki) -> Iterator[HecListener]:
    listener = HecListener(pki, TOKEN)
    listener.start()
    yield listener
    listener.stop()


@pytest.fixture
def syslog(pki: TestPki) -> Iterator[SyslogListener]:
    listener = SyslogListener(pki)
    listener.start()
    yield listener
    listener.stop()


def events(start: int, count: int) -> list[dict[str, object]]:
    return [
        {
            "@timestamp": "2026-12-04T10:00:00Z",
            "event.dataset": "shadowai.model_file",
            "event.action": "discovered",
            "host.name": "laptop-7",
            "file.path": f"/models/m{n}.gguf",
            "n": n,
        }
        for n in range(start, start + count)
    ]


def wait_until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def hec_forwarding(data_dir: Path, listener: HecListener, pki: TestPki, **extra: Any) -> Forwarding:
    hec = {"url": listener.url, "token": TOKEN, "ca_file": str(pki.ca_file)} | extra
    config = parse_config({"hec": hec, "backoff_base_s": 0.01, "backoff_cap_s": 0.2})
    return Forwarding.open(config, data_dir=data_dir)


def syslog_forwarding(data_dir: Path, listener: SyslogListener, pki: TestPki) -> Forwarding:
    sink = {"address": f"localhost:{listener.port}", "ca_file": str(pki.ca_file)}
    config = parse_config({"syslog": sink, "backoff_base_s": 0.01, "backoff_cap_s": 0.2})
    return Forwarding.open(config, data_dir=data_dir)


def numbers_at_hec(listener: HecListener) -> list[int]:
    return sorted(int(item["event"]["n"]) for item in listener.received() if "n" in item["event"])


def numbers_at_syslog(listener: SyslogListener) -> list[int]:
    found = []
    for message in listener.received():
        body = message.split(BOM, 1)[1]
        found.append(int(json.loads(body)["n"]))
    return sorted(found)


def test_hec_gets_every_event_sent_while_it_was_down(
    tmp_path: Path, hec: HecListener, pki: TestPki
) -> None:
    forwarding = hec_forwarding(tmp_path, hec, pki, batch_max_events=50)
    forwarding.start()
    try:
        forwarding.submit(events(0, 100))
        wait_until(lambda: len(numbers_at_hec(hec)) >= 100)
        hec.stop()
        forwarding.submit(events(100, 300))
        wait_until(lambda: forwarding.metrics()[0].failed >= 2)
        assert forwarding.metrics()[0].queued == 300
        hec.start()
        wait_until(lambda: forwarding.metrics()[0].queued == 0)
    finally:
        forwarding.close()
    assert set(numbers_at_hec(hec)) == set(range(400))


def test_hec_records_carry_the_splunk_fields(
    tmp_path: Path, hec: HecListener, pki: TestPki
) -> None:
    forwarding = hec_forwarding(tmp_path, hec, pki, index="ai", source="collector-1")
    forwarding.start()
    try:
        forwarding.submit(events(0, 1), alerts=[{"rule.id": "r1", "log.level": "high"}])
        wait_until(lambda: len(hec.received()) == 2)
    finally:
        forwarding.close()
    event, alert = sorted(hec.received(), key=lambda r: r["sourcetype"], reverse=True)
    assert event["sourcetype"] == "shadowai:event"
    assert alert["sourcetype"] == "shadowai:alert"
    assert event["host"] == "laptop-7"
    assert (event["source"], event["index"]) == ("collector-1", "ai")
    assert event["time"] == 1796378400.0
    assert event["event"]["file.path"] == "/models/m0.gguf"


def test_the_queue_survives_a_restart_while_the_hec_is_down(
    tmp_path: Path, hec: HecListener, pki: TestPki
) -> None:
    hec.stop()
    first = hec_forwarding(tmp_path, hec, pki)
    first.start()
    first.submit(events(0, 120))
    wait_until(lambda: first.metrics()[0].failed >= 1)
    first.close()  # the process goes away with the events still queued
    hec.start()
    second = hec_forwarding(tmp_path, hec, pki)
    assert second.metrics()[0].queued == 120
    second.start()
    try:
        wait_until(lambda: second.metrics()[0].queued == 0)
    finally:
        second.close()
    assert numbers_at_hec(hec) == list(range(120))


def test_a_busy_hec_is_retried_after_its_hint(
    tmp_path: Path, hec: HecListener, pki: TestPki
) -> None:
    hec.state.refusals = [503, 429, 503]
    hec.state.retry_after = "0"
    forwarding = hec_forwarding(tmp_path, hec, pki)
    forwarding.start()
    try:
        forwarding.submit(events(0, 10))
        wait_until(lambda: forwarding.metrics()[0].queued == 0)
        metrics = forwarding.metrics()[0]
    finally:
        forwarding.close()
    assert numbers_at_hec(hec) == list(range(10))
    assert (metrics.failed, metrics.sent, hec.state.requests) == (3, 10, 4)


def test_an_event_the_hec_refuses_is_isolated_and_the_rest_delivered(
    tmp_path: Path, hec: HecListener, pki: TestPki
) -> None:
    batch = events(0, 20)
    batch[13]["poison"] = True
    forwarding = hec_forwarding(tmp_path, hec, pki)
    forwarding.start()
    try:
        forwarding.submit(batch)
        wait_until(lambda: forwarding.metrics()[0].queued == 0)
        metrics = forwarding.metrics()[0]
    finally:
        forwarding.close()
    assert numbers_at_hec(hec) == [n for n in range(20) if n != 13]
    assert (metrics.rejected, metrics.sent) == (1, 19)


def test_a_wrong_token_keeps_the_events_queued(
    tmp_path: Path, hec: HecListener, pki: TestPki
) -> None:
    hec.state.token = "another-token"
    forwarding = hec_forwarding(tmp_path, hec, pki)
    forwarding.start()
    try:
        forwarding.submit(events(0, 5))
        wait_until(lambda: forwarding.metrics()[0].failed >= 3)
        assert forwarding.metrics()[0].queued == 5
    finally:
        forwarding.close()
    assert hec.received() == []


def test_syslog_gets_every_event_sent_while_it_was_down(
    tmp_path: Path, syslog: SyslogListener, pki: TestPki
) -> None:
    forwarding = syslog_forwarding(tmp_path, syslog, pki)
    forwarding.start()
    try:
        forwarding.submit(events(0, 100))
        wait_until(lambda: len(syslog.received()) >= 100)
        syslog.stop()
        forwarding.submit(events(100, 300))
        wait_until(lambda: forwarding.metrics()[0].failed >= 2)
        assert forwarding.metrics()[0].queued == 300
        syslog.start()
        wait_until(lambda: forwarding.metrics()[0].queued == 0)
    finally:
        forwarding.close()
    assert set(numbers_at_syslog(syslog)) == set(range(400))


def test_the_syslog_queue_survives_a_restart(
    tmp_path: Path, syslog: SyslogListener, pki: TestPki
) -> None:
    syslog.stop()
    first = syslog_forwarding(tmp_path, syslog, pki)
    first.start()
    first.submit(events(0, 50), alerts=[{"rule.id": "r", "log.level": "critical", "n": 50}])
    wait_until(lambda: first.metrics()[0].failed >= 1)
    first.close()
    syslog.start()
    second = syslog_forwarding(tmp_path, syslog, pki)
    second.start()
    try:
        wait_until(lambda: second.metrics()[0].queued == 0)
    finally:
        second.close()
    assert numbers_at_syslog(syslog) == list(range(51))
    critical = [m for m in syslog.received() if m.startswith(b"<130>1 ")]  # local0.crit
    assert len(critical) == 1


def test_a_syslog_receiver_with_an_unknown_ca_gets_nothing(
    tmp_path: Path, syslog: SyslogListener, pki: TestPki
) -> None:
    (tmp_path / "other").mkdir()
    other = make_pki(tmp_path / "other")
    sink = {"address": f"localhost:{syslog.port}", "ca_file": str(other.ca_file)}
    config = parse_config({"syslog": sink, "backoff_base_s": 0.01, "backoff_cap_s": 0.1})
    forwarding = Forwarding.open(config, data_dir=tmp_path, rand=random.Random(1).random)
    forwarding.start()
    try:
        forwarding.submit(events(0, 3))
        wait_until(lambda: forwarding.metrics()[0].failed >= 2)
        assert forwarding.metrics()[0].queued == 3
    finally:
        forwarding.close()
    assert syslog.received() == []


def test_structured_syslog_carries_the_fields_as_sd_params(
    tmp_path: Path, syslog: SyslogListener, pki: TestPki
) -> None:
    sink = {"address": f"localhost:{syslog.port}", "ca_file": str(pki.ca_file)}
    config = parse_config({"syslog": sink | {"format": "structured", "facility": "local7"}})
    forwarding = Forwarding.open(config, data_dir=tmp_path)
    forwarding.start()
    try:
        forwarding.submit(events(0, 5))
        wait_until(lambda: len(syslog.received()) == 5)
    finally:
        forwarding.close()
    for message in syslog.received():
        assert message.startswith(
            b"<190>1 2026-12-04T10:00:00.000Z laptop-7 shadowai - model_file "
        )
        assert b'[shadowai@32473 @timestamp="2026-12-04T10:00:00Z"' in message
        assert message.endswith(b"]" + b" " + BOM + message.split(BOM)[1])
    assert sorted(m.split(b' n="')[1].split(b'"')[0] for m in syslog.received()) == [
        b"0",
        b"1",
        b"2",
        b"3",
        b"4",
    ]
