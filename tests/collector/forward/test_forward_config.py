"""Forwarding settings from a plain dict: defaults, and every problem reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.forward.config import ForwardConfigError, parse_config


def test_an_empty_section_forwards_nothing() -> None:
    config = parse_config({})
    assert not config.enabled
    assert config.kinds == {"alerts", "events"}


def test_a_full_configuration_is_read() -> None:
    config = parse_config(
        {
            "hec": {"url": "https://splunk:8088/", "token": "t", "ca_file": "/etc/ca.pem"},
            "syslog": {"address": "[::1]:6514", "format": "structured", "facility": "local3"},
            "kinds": ["alerts"],
            "queue_max_bytes": 2**20,
        }
    )
    assert config.hec is not None and config.syslog is not None
    assert config.hec.endpoint == "https://splunk:8088/services/collector/event"
    assert config.hec.ca_file == Path("/etc/ca.pem")
    assert (config.syslog.host, config.syslog.port, config.syslog.facility) == ("::1", 6514, 19)
    assert config.kinds == {"alerts"}


def test_every_problem_is_named_with_its_key() -> None:
    with pytest.raises(ForwardConfigError) as caught:
        parse_config(
            {
                "hec": {"url": "ftp://x", "batch_max_events": 0, "tokn": "t"},
                "syslog": {"address": "nohost", "format": "xml", "client_cert": "/c.pem"},
                "kinds": ["everything"],
                "queue_max_bytes": "big",
            }
        )
    problems = "\n".join(caught.value.problems)
    for key in (
        "hec.url",
        "hec.token: is required",
        "hec.batch_max_events",
        "hec.tokn: unknown key",
        "syslog.address",
        "syslog.format",
        "syslog.client_key",
        "kinds",
        "queue_max_bytes",
    ):
        assert key in problems


def test_plain_http_needs_an_explicit_unsafe_flag() -> None:
    with pytest.raises(ForwardConfigError, match="in clear"):
        parse_config({"hec": {"url": "http://splunk:8088", "token": "t"}})
    config = parse_config({"hec": {"url": "http://s:8088", "token": "t", "unsafe_plaintext": True}})
    assert config.hec is not None


def test_a_section_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(ForwardConfigError, match="syslog: must be a mapping"):
        parse_config({"syslog": "localhost:6514"})


@pytest.mark.parametrize(
    "raw",
    [
        {"syslog": {"address": "h:1", "facility": []}},
        {"kinds": [["alerts"]]},
        {"hec": {"url": "https://[x", "token": "t"}},
        {"hec": {"url": "https://h:99999", "token": "t"}},
        {"hec": {"url": "https://h:port", "token": "t"}},
        {"syslog": {"address": "h:1", "format": {}}},
        {"hec": {"url": "https://h", "token": "t", "timeout_s": float("nan")}},
        {1: 2},
    ],
)
def test_malformed_values_are_problems_not_crashes(raw: dict[object, object]) -> None:
    with pytest.raises(ForwardConfigError):
        parse_config(raw)  # type: ignore[arg-type]


JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["https://[x", "https://h:99999", "http://h", "h:0", "local0", "alerts"]),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
KEYS = st.sampled_from(
    [
        "hec",
        "syslog",
        "kinds",
        "queue_max_bytes",
        "backoff_base_s",
        "url",
        "token",
        "address",
        "format",
        "facility",
        "client_cert",
        "client_key",
        "ca_file",
        "timeout_s",
        "index",
    ]
)
SECTION = st.dictionaries(KEYS, JSONISH, max_size=6)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(KEYS, JSONISH | SECTION, max_size=6))
def test_any_mapping_is_read_or_refused_with_problems(raw: dict[str, object]) -> None:
    try:
        parse_config(raw)
    except ForwardConfigError as exc:
        assert exc.problems
