"""The listing contract: cursors round-trip, forged ones are BadListing, never a crash."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.paging import (
    MAX_LIMIT,
    BadListing,
    Listing,
    decode_cursor,
    encode_cursor,
    page_of,
    parse_listing,
)

SORTABLE = ("host.name", "last_seen")
# Text a database can hold: no NUL, no lone surrogate (cursors carrying those are refused).
stored_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40
)
scalars = st.none() | st.booleans() | st.integers() | stored_text


@given(st.lists(scalars, max_size=4))
def test_a_cursor_gives_back_the_key_it_was_made_from(key: list[object]) -> None:
    cursor = encode_cursor(key, sort="-last_seen")  # type: ignore[arg-type]
    assert decode_cursor(cursor, sort="-last_seen") == tuple(key)


@given(st.text(max_size=200))
def test_any_text_as_a_cursor_decodes_or_is_a_bad_listing(text: str) -> None:
    try:
        decode_cursor(text, sort="host.name")
    except BadListing as exc:
        assert exc.field == "cursor"


@given(st.binary(max_size=200))
def test_any_bytes_behind_base64_decode_or_are_a_bad_listing(raw: bytes) -> None:
    import base64

    try:
        decode_cursor(base64.urlsafe_b64encode(raw).decode(), sort="host.name")
    except BadListing as exc:
        assert exc.field == "cursor"


def test_a_cursor_made_for_another_order_is_refused() -> None:
    cursor = encode_cursor(["a", 1], sort="host.name")
    with pytest.raises(BadListing, match=r"made for sort 'host\.name'"):
        decode_cursor(cursor, sort="-host.name")


def test_a_huge_cursor_is_refused_before_decoding() -> None:
    with pytest.raises(BadListing, match="longer than"):
        decode_cursor("A" * 100_000, sort="host.name")


@pytest.mark.parametrize("limit", [0, -1, MAX_LIMIT + 1])
def test_a_limit_out_of_range_names_the_limit(limit: int) -> None:
    with pytest.raises(BadListing) as raised:
        parse_listing(limit=limit, cursor=None, sort=None, sortable=SORTABLE, default_sort="x")
    assert raised.value.field == "limit"


def test_an_unknown_sort_lists_the_sortable_fields() -> None:
    with pytest.raises(BadListing, match=r"host\.name, last_seen"):
        parse_listing(limit=5, cursor=None, sort="secret", sortable=SORTABLE, default_sort="")


def test_a_leading_minus_sorts_descending() -> None:
    listing = parse_listing(
        limit=5, cursor=None, sort="-last_seen", sortable=SORTABLE, default_sort="host.name"
    )
    assert listing == Listing(limit=5, sort="last_seen", descending=True)


def test_a_page_has_a_next_cursor_only_when_more_rows_were_fetched() -> None:
    rows: list[dict[str, object]] = [{"host.name": f"h{i}", "id": i} for i in range(4)]
    listing = Listing(limit=3, sort="host.name")
    page = page_of(rows, listing, key=("host.name", "id"))
    assert [r["id"] for r in page.items] == [0, 1, 2]
    assert page.next is not None
    assert decode_cursor(page.next, sort="host.name") == ("h2", 2)
    assert page_of(rows[:3], listing, key=("host.name", "id")).next is None


def test_a_cursor_smuggling_a_nul_or_a_lone_surrogate_is_refused() -> None:
    for bad in ["a\x00b", "\ud800"]:
        with pytest.raises(BadListing, match="no database can take"):
            decode_cursor(encode_cursor([bad, 1], sort="x"), sort="x")
