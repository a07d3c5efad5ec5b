"""CSV exports: same rows as the JSON, and no cell a spreadsheet would run."""

from __future__ import annotations

import csv
import io

from hypothesis import given
from hypothesis import strategies as st

from collector.web.csvout import _NUMBER, cell, to_csv


def test_a_cell_that_looks_like_a_formula_is_quoted_as_text() -> None:
    assert cell('=HYPERLINK("http://evil","x")') == '\'=HYPERLINK("http://evil","x")'
    assert cell("@SUM(A1)") == "'@SUM(A1)"
    assert cell("+cmd") == "'+cmd"


def test_numbers_stay_numbers_even_when_negative() -> None:
    assert cell(-3) == "-3"
    assert cell("-2.5") == "-2.5"
    assert cell("+1") == "+1"


def test_words_a_float_parser_accepts_are_still_quoted() -> None:
    assert cell("-inf") == "'-inf"
    assert cell("+nan") == "'+nan"


def test_lists_are_joined_and_missing_values_are_empty() -> None:
    assert cell(["os.system", "=eval"]) == "os.system; '=eval"
    assert cell(None) == ""
    assert cell(True) == "true"


def test_the_header_lists_every_key_in_first_seen_order() -> None:
    text = to_csv([{"a": 1}, {"b": 2, "a": 3}])
    assert list(csv.reader(io.StringIO(text))) == [["a", "b"], ["1", ""], ["3", "2"]]


@given(st.lists(st.dictionaries(st.text(max_size=8), st.text(max_size=30), max_size=4), max_size=5))
def test_every_row_reads_back_with_the_same_width(items: list[dict[str, object]]) -> None:
    rows = list(csv.reader(io.StringIO(to_csv(items), newline="")))
    assert len(rows) == len(items) + 1
    assert all(len(row) == len(rows[0]) for row in rows)
    for row in rows[1:]:
        assert not any(c.startswith(("=", "+", "-", "@")) and not _NUMBER.fullmatch(c) for c in row)
