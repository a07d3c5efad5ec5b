"""Enrollment tokens round-trip and anything else is refused with a hint."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wire import tokens


def test_a_minted_token_parses_back() -> None:
    token = tokens.mint("ab" * 32)
    assert tokens.parse(str(token)) == token
    assert len(token.secret_sha256) == 32


@pytest.mark.parametrize(
    "text", ["", "sae_", "sat_0123456789abcdef_x", "sae_xyz_" + "0" * 64 + "_s"]
)
def test_malformed_tokens_are_refused(text: str) -> None:
    with pytest.raises(tokens.TokenError, match="tokens create"):
        tokens.parse(text)


@given(st.text(max_size=300))
def test_arbitrary_text_parses_or_raises_token_error(text: str) -> None:
    with contextlib.suppress(tokens.TokenError):
        tokens.parse(text)
