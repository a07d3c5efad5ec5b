"""GGUF chat templates: hashed as written, and flagged when they reach for Python internals the
way Jinja2 sandbox escapes do. Files are written by the gguf library."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import gguf
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.detect.formats import ModelInfo
from agent.detect.formats import gguf as reader
from agent.errors import FormatError

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
# Benign templates use namespace(), loop variables, filters and raise_exception freely.
LLAMA3 = (
    "{% set ns = namespace(system='') %}{{- bos_token }}{% for message in messages %}"
    "{% if message['role'] not in ['user', 'assistant', 'system'] %}"
    "{{ raise_exception('Unknown role') }}{% endif %}"
    "{{- '<|start_header_id|>' + message['role'] | trim + '<|end_header_id|>\\n\\n' }}"
    "{{- message['content'] | trim + '<|eot_id|>' }}{% if loop.last %}{% endif %}"
    "{% endfor %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
)
ESCAPE = "{{ cycler.__init__.__globals__.os.popen('id').read() }}" + CHATML
SUBCLASSES = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
ATTR = "{{ messages|attr('\\x5f\\x5fclass\\x5f\\x5f') }}{% import 'x' as y %}"


def write_gguf(path: Path, template: str | Sequence[Mapping[str, str]] | None) -> Path:
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name("templated")
    if template is not None:
        writer.add_chat_template(template)
    writer.add_tensor("w", np.ones((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def read(path: Path) -> ModelInfo:
    data = path.read_bytes()
    return reader.parse(lambda o, n: data[o : o + n], len(data))


@pytest.mark.parametrize("template", [CHATML, LLAMA3], ids=["chatml", "llama3"])
def test_a_benign_template_is_hashed_and_safe(tmp_path: Path, template: str) -> None:
    info = read(write_gguf(tmp_path / "m.gguf", template))

    assert info.chat_template_sha256 == hashlib.sha256(template.encode()).hexdigest()
    assert info.unsafe is False and info.unsafe_reasons == ()
    assert info.risk == "none"


def test_without_a_template_nothing_is_checked(tmp_path: Path) -> None:
    info = read(write_gguf(tmp_path / "m.gguf", None))

    assert info.chat_template_sha256 is None and info.unsafe is None and info.risk is None


@pytest.mark.parametrize(
    ("template", "what"),
    [
        (ESCAPE, "__init__, __globals__, popen"),
        (SUBCLASSES, "__class__, __mro__, __subclasses__"),
        (ATTR, "|attr, {% import"),
    ],
    ids=["globals", "subclasses", "attr-import"],
)
def test_a_template_that_escapes_its_sandbox_is_dangerous(
    tmp_path: Path, template: str, what: str
) -> None:
    info = read(write_gguf(tmp_path / "m.gguf", template))

    assert (info.risk, info.unsafe) == ("dangerous", True)
    assert info.unsafe_reasons == (f"chat template reaches for Python internals: {what}",)
    assert info.chat_template_sha256 == hashlib.sha256(template.encode()).hexdigest()


def test_named_templates_are_checked_and_the_default_is_hashed(tmp_path: Path) -> None:
    templates = [{"name": "default", "template": CHATML}, {"name": "tool_use", "template": ESCAPE}]

    info = read(write_gguf(tmp_path / "m.gguf", templates))

    assert info.chat_template_sha256 == hashlib.sha256(CHATML.encode()).hexdigest()
    assert info.unsafe_reasons == (
        "chat template reaches for Python internals: __init__, __globals__, popen "
        "(in tokenizer.chat_template.tool_use)",
    )


def test_an_odd_template_that_does_not_escape_is_suspicious(tmp_path: Path) -> None:
    info = read(write_gguf(tmp_path / "m.gguf", "{% import 'macros' as m %}" + CHATML))

    assert (info.risk, info.unsafe) == ("suspicious", False)
    assert info.unsafe_reasons == ("chat template reaches for Python internals: {% import",)


def test_a_template_over_the_string_cap_is_refused(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "m.gguf", "x" * (reader.MAX_STRING + 1))

    with pytest.raises(FormatError, match="cap"):
        read(path)


@pytest.mark.parametrize(
    "text",
    ["macOS. is fine", "{{ message.content }}", "photos.jpg", "{{ ns.system }}", "import me"],
)
def test_ordinary_text_is_no_hazard(text: str) -> None:
    assert reader.template_hazards(text) == ()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=2000))
def test_hazards_of_any_text_are_few_and_short(text: str) -> None:
    found = reader.template_hazards(text)

    assert len(found) <= reader.MAX_HAZARDS and all(len(f) <= 64 for f in found)
