"""One architecture name across formats: transformers' own configs and class mappings, and
GGUF headers written by the gguf package, give the same family."""

from __future__ import annotations

import re
from pathlib import Path

import gguf
import pytest
import transformers
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers.models.auto import configuration_auto, modeling_auto

from agent.detect.architectures import MAX_NAME, family, family_of_class, resolve, split
from agent.detect.formats import identify
from agent.detect.groups import apply_folder_metadata
from agent.detect.hfconfig import parse_config

CAUSAL = modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
SEED_FAMILIES = [
    "llama",
    "qwen2",
    "qwen2_moe",
    "gemma3",
    "phi3",
    "mistral",
    "nemotron_h",
    "gpt_oss",
]


def squeeze(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


@pytest.mark.parametrize("model_type", SEED_FAMILIES)
def test_a_config_written_by_transformers_names_family_and_class(
    tmp_path: Path, model_type: str
) -> None:
    config = transformers.AutoConfig.for_model(model_type)
    config.architectures = [CAUSAL.get(model_type) or CAUSAL[f"{model_type}_text"]]
    config.save_pretrained(tmp_path)

    parsed = parse_config((tmp_path / "config.json").read_bytes())

    assert resolve((parsed.model_type,), (parsed.architecture,)) == (
        model_type,
        config.architectures[0],
    )


def test_every_causal_lm_class_of_transformers_maps_to_its_family() -> None:
    owners: dict[str, set[str]] = {}
    for model_type, cls in CAUSAL.items():
        owners.setdefault(cls, set()).add(model_type)
    # A class shared by several model types (LlamaForCausalLM for exaone) names the first.
    single = {cls: types.pop() for cls, types in owners.items() if len(types) == 1}
    wrong = {cls: t for cls, t in single.items() if family_of_class(cls) != family(t)}

    assert wrong == {}
    assert len(single) > 150


def test_text_halves_of_multimodal_families_take_the_family_name() -> None:
    assert family("gemma3_text") == "gemma3"
    assert family_of_class("Gemma3ForCausalLM") == family("gemma3_text") == "gemma3"


def gguf_family(tmp_path: Path, arch: str) -> str | None:
    path = tmp_path / f"{arch}.gguf"
    writer = gguf.GGUFWriter(path, arch)
    writer.add_name(arch)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    data = path.read_bytes()
    data += bytes(-len(data) % gguf.GGUF_DEFAULT_ALIGNMENT)  # where the data would start
    info = identify(lambda offset, length: data[offset : offset + length], len(data))
    assert info is not None and info.architecture == arch  # the header, as written
    return apply_folder_metadata(info, None, None).architecture


def test_gguf_architectures_take_transformers_spelling_of_the_same_family(tmp_path: Path) -> None:
    hf_types = {squeeze(t): t for t in configuration_auto.CONFIG_MAPPING_NAMES}
    archs = sorted(set(gguf.MODEL_ARCH_NAMES.values()))
    same = {a: hf_types[squeeze(a)] for a in archs if squeeze(a) in hf_types}

    found = {a: gguf_family(tmp_path, a) for a in same}

    assert found == same
    assert len(same) > 60


@pytest.mark.parametrize(
    ("arch", "expected"),
    [
        ("command-r", "cohere"),
        ("nemotron_h_moe", "nemotron_h"),
        ("phi2", "phi"),
        ("llama", "llama"),
    ],
)
def test_gguf_names_of_their_own_map_through_the_table(
    tmp_path: Path, arch: str, expected: str
) -> None:
    assert gguf_family(tmp_path, arch) == expected


def test_a_metadata_value_is_read_as_a_family_or_a_class() -> None:
    assert split("LlamaForCausalLM") == ("llama", "LlamaForCausalLM")
    assert split("qwen2") == ("qwen2", None)
    assert split("TinyNet") == (None, "TinyNet")  # no head suffix, no known family
    assert split(None) == (None, None)


def test_the_header_family_wins_over_the_config_and_a_class_fills_in() -> None:
    assert resolve(("llama", "mistral"), (None,)) == ("llama", None)
    assert resolve((None, None), ("MistralForCausalLM",)) == ("mistral", "MistralForCausalLM")
    assert resolve(("Qwen2ForCausalLM",), (None,)) == ("qwen2", "Qwen2ForCausalLM")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_name_gives_a_short_family_and_class_or_none(name: str) -> None:
    fam, cls = split(name)

    assert fam is None or (isinstance(fam, str) and len(fam) <= 2 * MAX_NAME)
    assert cls is None or len(cls) <= MAX_NAME
    assert family_of_class(name) is None or isinstance(family_of_class(name), str)
