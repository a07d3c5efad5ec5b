"""Links of listing pages: sort headers, next and first page, search hits."""

from __future__ import annotations

from collector.paging import Listing
from collector.web.views import Pager, Sorter, digest_link, hit_link, host_link, url


def test_a_header_sorts_by_its_column_and_flips_the_current_one() -> None:
    params = {"q": "llama", "sort": "name", "cursor": "abc"}
    sorter = Sorter("/models", params, Listing(sort="name"))
    assert sorter.href("name") == "/models?q=llama&sort=-name"  # the cursor is dropped
    assert sorter.href("size") == "/models?q=llama&sort=size"
    assert sorter.mark("name") == "ascending" and sorter.mark("size") == ""
    down = Sorter("/models", {"sort": "-name"}, Listing(sort="name", descending=True))
    assert down.href("name") == "/models?sort=name" and down.mark("name") == "descending"


def test_pages_link_onwards_and_back_to_the_first() -> None:
    first = Pager("/hosts", {"group": "eng"}, "CUR")
    assert first.next == "/hosts?group=eng&cursor=CUR" and first.first is None
    later = Pager("/hosts", {"group": "eng", "cursor": "OLD"}, None)
    assert later.next is None and later.first == "/hosts?group=eng"
    assert later.csv == "/hosts?group=eng&cursor=OLD&format=csv"


def test_query_values_are_encoded_and_empty_ones_left_out() -> None:
    assert url("/search", {"q": "a&b c", "type": ""}) == "/search?q=a%26b+c"
    assert url("/search", {}) == "/search"


def test_ids_are_escaped_into_one_path_segment() -> None:
    assert host_link("a/../b?c") == "/hosts/a%2F..%2Fb%3Fc"
    assert digest_link("ab" * 32) == "/models/" + "ab" * 32


def test_a_hit_links_to_its_host_or_its_digest() -> None:
    assert hit_link({"type": "host", "agent_id": "a1", "sha256": None}) == "/hosts/a1"
    assert hit_link({"type": "path", "agent_id": "a1", "sha256": "cd" * 32}) == digest_link(
        "cd" * 32
    )
    assert hit_link({"type": "path", "agent_id": "a1", "sha256": None}) == "/hosts/a1"
    assert hit_link({"type": "model", "agent_id": None, "sha256": None}) == "/search"
