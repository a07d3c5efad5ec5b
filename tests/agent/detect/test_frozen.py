"""quick_init: frozen dataclasses built by a dict-filling __init__ behave exactly as those built
by the generated one, and classes it cannot rebuild faithfully are refused."""

from __future__ import annotations

import dataclasses
import inspect
import pickle
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.detect.formats import ModelInfo
from agent.detect.formats.unsafe import Judgement
from agent.detect.formats.ziparchive import Member
from agent.detect.frozen import quick_init
from agent.detect.model import FileObservation


@dataclasses.dataclass(frozen=True)
class Plain:
    name: str
    size: int = 0
    tags: tuple[str, ...] = ()
    note: str | None = None


@quick_init
@dataclasses.dataclass(frozen=True)
class Quick:
    name: str
    size: int = 0
    tags: tuple[str, ...] = ()
    note: str | None = None


values = st.fixed_dictionaries(
    {"name": st.text(max_size=5)},
    optional={
        "size": st.integers(),
        "tags": st.tuples(st.text(max_size=3)),
        "note": st.none() | st.text(max_size=3),
    },
)


@given(values)
def test_an_instance_holds_what_the_generated_init_would_give_it(kwargs: dict[str, Any]) -> None:
    quick, plain = Quick(**kwargs), Plain(**kwargs)

    assert dataclasses.astuple(quick) == dataclasses.astuple(plain)
    assert hash(quick) == hash(Quick(**kwargs))
    assert quick == Quick(*dataclasses.astuple(plain))
    assert pickle.loads(pickle.dumps(quick)) == quick


def test_it_stays_frozen_and_refuses_wrong_arguments() -> None:
    quick = Quick("a")

    with pytest.raises(dataclasses.FrozenInstanceError):
        quick.name = "b"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Quick()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Quick("a", colour="red")  # type: ignore[call-arg]


def test_the_records_it_rebuilds_keep_their_signatures() -> None:
    for cls in (ModelInfo, FileObservation, Judgement, Member):
        parameters = list(inspect.signature(cls).parameters.values())
        fields = dataclasses.fields(cls)
        assert [p.name for p in parameters] == [f.name for f in fields]
        assert [p.default for p in parameters] == [
            inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default
            for f in fields
        ]


@pytest.mark.parametrize(
    "options",
    [
        {"frozen": False},
        {"frozen": True, "slots": True},
        {"frozen": True, "field": dataclasses.field(default_factory=list)},
        {"frozen": True, "field": dataclasses.field(default=0, init=False)},
        {"frozen": True, "field": dataclasses.field(default=0, kw_only=True)},
    ],
)
def test_classes_it_cannot_rebuild_faithfully_are_refused(options: dict[str, object]) -> None:
    field = options.pop("field", dataclasses.field(default=0))
    cls = dataclasses.make_dataclass("Other", [("value", object, field)], **options)  # type: ignore[arg-type]

    with pytest.raises(TypeError):
        quick_init(cls)


def test_a_class_with_a_post_init_is_refused() -> None:
    @dataclasses.dataclass(frozen=True)
    class Checked:
        value: int

        def __post_init__(self) -> None:
            assert self.value >= 0

    with pytest.raises(TypeError):
        quick_init(Checked)
