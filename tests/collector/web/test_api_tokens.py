"""API tokens: their shape, parsing untrusted header text, and the role order."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from collector.web.auth import (
    ROLES,
    bearer_token,
    mint_api_token,
    parse_api_token,
    role_allows,
    secret_sha256,
)


def test_minted_token_has_the_documented_shape() -> None:
    token, token_id, digest = mint_api_token()
    assert re.fullmatch(r"sat_[0-9a-f]{16}_[A-Za-z0-9_-]{43}", token)
    assert token.split("_", 2)[1] == token_id
    assert digest == secret_sha256(token[len("sat_") + 17 :])


def test_minted_token_parses_back_to_its_id_and_digest() -> None:
    token, token_id, digest = mint_api_token()
    assert parse_api_token(token) == (token_id, digest)


def test_minted_tokens_differ() -> None:
    assert len({mint_api_token()[0] for _ in range(20)}) == 20


def test_near_misses_do_not_parse() -> None:
    token, _, _ = mint_api_token()
    for bad in [
        token[:-1],
        token + "x",
        token.replace("sat_", "sak_"),
        token.upper(),
        " " + token[1:],
        token[:-1] + "\n",
        "",
    ]:
        assert parse_api_token(bad) is None, bad


@given(st.text(max_size=200))
def test_any_text_parses_or_is_none(text: str) -> None:
    parsed = parse_api_token(text)
    assert parsed is None or (len(parsed[0]) == 16 and len(parsed[1]) == 32)


@given(st.text(alphabet="sat_0123456789abcdefABCXYZ-", min_size=60, max_size=70))
def test_token_like_text_parses_or_is_none(text: str) -> None:
    parsed = parse_api_token(text)
    if parsed is not None:
        assert text.startswith("sat_" + parsed[0] + "_")


def test_bearer_header_is_read_case_insensitively() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer   abc  ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token("Bearer") is None
    assert bearer_token(None) is None


@given(st.text(max_size=100))
def test_any_authorization_header_gives_text_or_none(header: str) -> None:
    token = bearer_token(header)
    assert token is None or (token and token == token.strip())


def test_roles_include_the_ones_below() -> None:
    assert ROLES == ("viewer", "analyst", "admin")
    assert role_allows("admin", "analyst") and role_allows("analyst", "analyst")
    assert not role_allows("viewer", "analyst")
    assert not role_allows("root", "viewer")
    assert not role_allows(None, "viewer")
