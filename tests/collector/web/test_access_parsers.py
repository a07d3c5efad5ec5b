"""The parsers of untrusted request text behind the login: Host headers, cookies, session
tokens, `next`, form bodies and throttle keys. Each parses or refuses; none crashes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.web.forms import BadForm, field, parse_form
from collector.web.hosts import BadHost, HostAllowList, allowed_hosts, parse_host
from collector.web.session import mint_token, parse_token, read_cookie, safe_next
from collector.web.throttle import ThrottlePolicy, network, throttle_keys

HOSTISH = st.text(alphabet="abcLOCALHOST0123456789.-_:[]% \t\x00é", max_size=40)


@pytest.mark.parametrize(
    ("header", "parsed"),
    [
        ("localhost", ("localhost", None)),
        ("LocalHost.:8080", ("localhost", 8080)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("[::1]:8080", ("::1", 8080)),
        ("[0:0:0:0:0:0:0:1]", ("::1", None)),
        ("collector.example.org:443", ("collector.example.org", 443)),
    ],
)
def test_host_headers_parse_to_a_name_and_port(header: str, parsed: tuple[str, int]) -> None:
    assert parse_host(header) == parsed


@pytest.mark.parametrize(
    "header",
    [
        "",
        ":80",
        "a b",
        "host:",
        "host:80:80",
        "host:65536",
        "host:+80",
        "[::1",
        "[::g]:1",
        "[::1]x",
        "a..b",
        "évil",
        "host/path",
        "user@host",
        "[fe80::1%eth0]:80",
        "x" * 301,
    ],
)
def test_anything_else_is_a_bad_host(header: str) -> None:
    with pytest.raises(BadHost):
        parse_host(header)


@given(st.one_of(st.text(max_size=60), HOSTISH))
def test_any_host_header_parses_or_is_refused(header: str) -> None:
    try:
        host, port = parse_host(header)
    except BadHost:
        return
    assert host and host == host.lower() and host.isascii()
    assert port is None or 0 <= port <= 65535
    shown = f"[{host}]" if ":" in host else host
    assert parse_host(shown if port is None else f"{shown}:{port}") == (host, port)


@given(st.one_of(st.text(max_size=60), HOSTISH))
def test_the_allow_list_answers_any_header(header: str) -> None:
    assert HostAllowList.local(8080).allows(header) in (True, False)


def test_a_collector_on_every_interface_answers_to_the_machines_names() -> None:
    hosts = allowed_hosts("0.0.0.0", 8080, ["proxy.example", "other.example:8443"], ["Box", ""])
    for ok in [
        "box:8080",
        "localhost:8080",
        "proxy.example",
        "proxy.example:9",
        "other.example:8443",
    ]:
        assert hosts.allows(ok), ok
    for refused in ["box:8081", "box", "other.example", "10.0.0.5:8080"]:
        assert not hosts.allows(refused), refused
    on_one = allowed_hosts("10.0.0.5", 80, [], ["box"])
    assert on_one.allows("10.0.0.5") and on_one.allows("10.0.0.5:80")
    assert not on_one.allows("box") and not on_one.allows("10.0.0.5:8080")
    assert allowed_hosts("::1", 8080, []).allows("[::1]:8080")


def test_cookies_are_found_by_exact_name() -> None:
    header = 'a=1; shadowai_session=tok; x_shadowai_session=no; quoted="v"'
    assert read_cookie(header, "shadowai_session") == "tok"
    assert read_cookie(header, "quoted") == "v"
    assert read_cookie(header, "missing") is None
    assert read_cookie(None, "a") is None
    assert read_cookie("a=1", "a;b") is None


@given(st.text(max_size=200), st.text(max_size=30))
def test_any_cookie_header_gives_text_or_none(header: str, name: str) -> None:
    value = read_cookie(header, name)
    assert value is None or value in header


@given(
    st.dictionaries(
        st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True),
        st.from_regex(r"[A-Za-z0-9_-]{0,50}", fullmatch=True),
        max_size=5,
    )
)
def test_a_cookie_written_by_a_browser_is_read_back(cookies: dict[str, str]) -> None:
    header = "; ".join(f"{k}={v}" for k, v in cookies.items())
    for name, value in cookies.items():
        assert read_cookie(header, name) == value


def test_minted_session_tokens_parse_to_their_digest() -> None:
    token, digest = mint_token()
    assert parse_token(token) == digest
    for bad in [token[:-1], token + "a", token[:-1] + "=", None, "", " " + token[1:]]:
        assert parse_token(bad) is None


@given(st.one_of(st.none(), st.text(max_size=60), st.from_regex(r"[A-Za-z0-9_=-]{43}")))
def test_any_cookie_value_is_a_token_digest_or_none(text: str | None) -> None:
    digest = parse_token(text)
    assert digest is None or len(digest) == 32


@given(
    st.one_of(st.none(), st.text(max_size=80), st.text(alphabet="/\\:.@%?#ab \t\r\n", max_size=20))
)
def test_next_is_always_a_path_on_this_site(value: str | None) -> None:
    target = safe_next(value)
    parts = urlsplit(target)
    assert target.startswith("/") and not target.startswith("//")
    assert not parts.scheme and not parts.netloc and "\\" not in target
    assert all(0x21 <= ord(c) < 0x7F for c in target)
    assert safe_next(target) == target


def test_a_form_body_gives_its_fields() -> None:
    form = parse_form(b"username=al%C3%AFce&password=a+b&csrf_token=&x=1&x=2", FORM)
    assert field(form, "username") == "alïce" and field(form, "password") == "a b"
    assert field(form, "csrf_token") == "" and form["x"] == ["1", "2"]
    assert field(form, "missing") == ""
    for body, kind in [(b"a=1", "text/plain"), (b"a=\xff", FORM), (b"a" * (1 << 20 + 1), FORM)]:
        with pytest.raises(BadForm):
            parse_form(body, kind)


FORM = "application/x-www-form-urlencoded; charset=utf-8"


@given(st.binary(max_size=300), st.sampled_from([FORM, "multipart/form-data", "", None]))
def test_any_body_is_a_form_or_refused(body: bytes, kind: str | None) -> None:
    try:
        form = parse_form(body, kind)
    except BadForm:
        return
    assert all(isinstance(v, str) for values in form.values() for v in values)


def test_the_wait_doubles_after_the_free_failures_up_to_a_cap() -> None:
    policy = ThrottlePolicy()
    assert [policy.delay(n).total_seconds() for n in range(4, 11)] == [
        0,
        30,
        60,
        120,
        240,
        480,
        900,
    ]
    assert policy.delay(10**9) == timedelta(minutes=15)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    counts = {"user:a": (6, now - timedelta(seconds=10)), "addr:x": (2, now)}
    assert policy.wait(counts, now) == timedelta(seconds=50)
    assert policy.wait({"user:a": (50, now - timedelta(hours=1))}, now) == timedelta(0)


@given(st.integers(min_value=0, max_value=10**12), st.integers(min_value=0, max_value=10**6))
def test_the_wait_never_shrinks_with_more_failures(failures: int, more: int) -> None:
    policy = ThrottlePolicy()
    assert timedelta(0) <= policy.delay(failures) <= policy.delay(failures + more)


@given(st.text(max_size=300), st.one_of(st.none(), st.text(max_size=80)))
def test_throttle_keys_are_short_printable_text(username: str, address: str | None) -> None:
    for key in throttle_keys(username, address):
        assert key.isascii() and key.isprintable() and len(key) <= 80


def test_networks_group_ipv6_by_64_and_unwrap_mapped_ipv4() -> None:
    assert network("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert network("::ffff:192.0.2.1") == "192.0.2.1"
    assert network("192.0.2.1") == "192.0.2.1"
    assert network(None) == "unknown" and network("\x00") == "unknown"
