"""config.json, quantize_config.json and model cards as transformers and huggingface_hub write
them; hand-written only where the writer cannot run here (mlx-lm, llm-compressor, PEFT)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
import transformers
from huggingface_hub import ModelCard, ModelCardData
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.detect.hfconfig import (
    MAX_CARD_CHARS,
    MAX_CONFIG_BYTES,
    CardInfo,
    parse_config,
    parse_genai_config,
    parse_model_card,
    parse_quantize_config,
)
from agent.detect.quantized import Scheme
from agent.errors import FormatError


def saved_config(tmp_path: Path, quantization: Any = None, **options: Any) -> bytes:
    config = transformers.LlamaConfig(
        hidden_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=8192,
        **options,
    )
    config.architectures = ["LlamaForCausalLM"]
    if quantization is not None:
        config.quantization_config = quantization
    config.save_pretrained(tmp_path)
    return (tmp_path / "config.json").read_bytes()


def test_transformers_config_gives_architecture_context_dtype_and_producer(
    tmp_path: Path,
) -> None:
    info = parse_config(saved_config(tmp_path, dtype="bfloat16"))

    assert info.is_model
    assert (info.architecture, info.model_type) == ("LlamaForCausalLM", "llama")
    assert info.context_length == 8192
    assert info.dtype == "BF16"
    assert info.quantization is None
    assert info.producer == f"transformers {transformers.__version__}"


@pytest.mark.parametrize(
    ("config_class", "options", "expected"),
    [
        ("GPTQConfig", {"bits": 4}, "GPTQ-4bit"),
        ("GPTQConfig", {"bits": 8}, "GPTQ-8bit"),
        ("AwqConfig", {"bits": 4}, "AWQ-4bit"),
        ("BitsAndBytesConfig", {"load_in_4bit": True}, "BNB-4bit"),
        ("BitsAndBytesConfig", {"load_in_8bit": True}, "BNB-8bit"),
        ("FineGrainedFP8Config", {}, "FP8"),
        ("Mxfp4Config", {}, "MXFP4"),
    ],
)
def test_quantization_config_names_method_and_bits(
    tmp_path: Path, config_class: str, options: dict[str, Any], expected: str
) -> None:
    quantization = getattr(transformers, config_class)(**options)
    assert parse_config(saved_config(tmp_path, quantization)).quantization == expected


def test_mlx_quantization_at_top_level() -> None:
    """mlx-lm's convert (0.19 and later) writes the same dict under both keys, no method."""
    q = {"group_size": 64, "bits": 4}
    config = {"model_type": "qwen2", "quantization": q, "quantization_config": q}
    assert parse_config(json.dumps(config).encode()).quantization == "MLX-4bit"
    only_top = {"model_type": "qwen2", "quantization": {"group_size": 32, "bits": 8}}
    assert parse_config(json.dumps(only_top).encode()).quantization == "MLX-8bit"


@pytest.mark.parametrize(
    ("weights", "activations", "expected"),
    [
        ({"num_bits": 4, "type": "int"}, None, "W4A16"),
        ({"num_bits": 8, "type": "int"}, {"num_bits": 8, "type": "int"}, "W8A8"),
        ({"num_bits": 8, "type": "float"}, {"num_bits": 8, "type": "float"}, "FP8"),
    ],
)
def test_compressed_tensors_schemes(
    weights: dict[str, object], activations: dict[str, object] | None, expected: str
) -> None:
    """The shape llm-compressor writes: config_groups of weights and input_activations."""
    group = {"targets": ["Linear"], "weights": weights, "input_activations": activations}
    q = {"quant_method": "compressed-tensors", "config_groups": {"group_0": group}}
    config = {"model_type": "llama", "quantization_config": q}
    assert parse_config(json.dumps(config).encode()).quantization == expected


def test_nested_text_config_gives_context_length() -> None:
    config = {
        "architectures": ["LlavaForConditionalGeneration"],
        "model_type": "llava",
        "text_config": {"model_type": "llama", "max_position_embeddings": 4096},
    }
    assert parse_config(json.dumps(config).encode()).context_length == 4096


def test_adapter_config_names_base_model_and_peft_type() -> None:
    """PEFT's adapter_config.json (peft 0.x), keys as LoraConfig.save_pretrained writes them."""
    config = {"peft_type": "LORA", "base_model_name_or_path": "meta-llama/Llama-3.2-1B", "r": 8}
    info = parse_config(json.dumps(config).encode())
    assert info.is_model
    assert (info.adapter, info.base_model) == ("LORA", "meta-llama/Llama-3.2-1B")


def test_local_name_or_path_is_not_reported() -> None:
    local = {"model_type": "llama", "_name_or_path": "/home/alice/checkpoints/run-7"}
    hub = {"model_type": "llama", "_name_or_path": "meta-llama/Llama-3.2-1B"}
    assert parse_config(json.dumps(local).encode()).name is None
    assert parse_config(json.dumps(hub).encode()).name == "meta-llama/Llama-3.2-1B"


def test_config_of_another_program_is_not_a_model() -> None:
    info = parse_config(b'{"editor.fontSize": 14, "max_position_embeddings": "many"}')
    assert not info.is_model
    assert info.context_length is None


def test_wrong_types_are_left_out() -> None:
    config = {
        "architectures": "LlamaForCausalLM",
        "model_type": 7,
        "max_position_embeddings": True,
        "n_ctx": -5,
        "quantization_config": {"quant_method": "gptq", "bits": "four"},
    }
    info = parse_config(json.dumps(config).encode())
    assert (info.architecture, info.model_type, info.context_length) == (None, None, None)
    assert info.quantization == "GPTQ"


def test_autogptq_quantize_config() -> None:
    data = json.dumps({"bits": 4, "group_size": 128, "desc_act": False, "sym": True}).encode()
    assert parse_quantize_config(data) == "GPTQ-4bit"
    assert parse_quantize_config(b"{}") is None


@pytest.mark.parametrize(
    ("data", "offset"),
    [(b'{"model_type": "llama",', 23), (b"[1, 2]", 0), (b"\xff\xfe{", 0), (b"", 0)],
)
def test_malformed_config_raises_format_error_with_offset(data: bytes, offset: int) -> None:
    with pytest.raises(FormatError) as raised:
        parse_config(data)
    assert raised.value.format == "hf-config"
    assert raised.value.offset == offset


def test_oversized_config_is_refused_unparsed() -> None:
    big = b'{"model_type": "llama", "pad": "' + b"x" * MAX_CONFIG_BYTES + b'"}'
    with pytest.raises(FormatError, match="larger than"):
        parse_config(big)


def test_deeply_nested_config_raises_format_error() -> None:
    with pytest.raises(FormatError):
        parse_config(b"[" * 100_000)


def test_model_card_written_by_huggingface_hub() -> None:
    data = ModelCardData(
        license="llama3.2",
        base_model="meta-llama/Llama-3.2-1B",
        pipeline_tag="text-generation",
        library_name="transformers",
        language=["en"],
    )
    card = ModelCard.from_template(data, model_id="tiny")

    info = parse_model_card(str(card))

    assert info == CardInfo(
        license="llama3.2",
        base_model=("meta-llama/Llama-3.2-1B",),
        pipeline_tag="text-generation",
        library_name="transformers",
    )


def test_model_card_base_model_list_and_other_license() -> None:
    text = (
        "---\nlicense: other\nlicense_name: tongyi-qianwen\nbase_model:\n"
        "- Qwen/Qwen2.5-7B\n- Qwen/Qwen2.5-7B-Instruct\n---\n# Card\n"
    )
    info = parse_model_card(text)
    assert info.license == "tongyi-qianwen"
    assert info.base_model == ("Qwen/Qwen2.5-7B", "Qwen/Qwen2.5-7B-Instruct")


def test_readme_without_front_matter_is_empty() -> None:
    assert parse_model_card("# Just a readme\n\n---\n") == CardInfo()
    assert parse_model_card("") == CardInfo()


def test_unclosed_front_matter_raises() -> None:
    with pytest.raises(FormatError, match="not closed"):
        parse_model_card("---\nlicense: mit\n# no end\n")


def test_bad_yaml_raises_with_offset_into_the_file() -> None:
    with pytest.raises(FormatError) as raised:
        parse_model_card("---\nlicense: [mit\n---\n")
    assert raised.value.format == "model-card"
    assert raised.value.offset >= 4


def test_front_matter_past_the_card_limit_is_not_read() -> None:
    text = "---\nlicense: mit\n" + "tags: x\n" * (MAX_CARD_CHARS // 8) + "---\n"
    with pytest.raises(FormatError, match="not closed"):
        parse_model_card(text)


def test_yaml_tags_that_build_objects_are_refused() -> None:
    with pytest.raises(FormatError):
        parse_model_card("---\nlicense: !!python/object/apply:os.system ['true']\n---\n")


def test_alias_expansion_stays_small() -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    lines += [
        f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    ]
    text = "---\n" + "\n".join(lines) + "\nbase_model: *i\nlicense: mit\n---\n"
    info = parse_model_card(text)
    assert info.license == "mit"
    assert info.base_model == ()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_config_parses_or_raises_format_error(data: bytes) -> None:
    with contextlib.suppress(FormatError):
        parse_config(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["bits", "quant_method", "config_groups", "weights", "model_type", "mode", "type"]
            )
            | st.text(max_size=8),
            children,
            max_size=4,
        )
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(json_values, json_values)
def test_config_of_any_json_shape_never_fails(quant: object, top: object) -> None:
    config = {"model_type": "x", "quantization_config": quant, "quantization": top}
    parse_config(json.dumps(config).encode())
    parse_quantize_config(json.dumps(quant if isinstance(quant, dict) else {}).encode())


yamlish = st.text(alphabet="-:?,[]{}&*!|>'\"#%@`\n\t abc019.", max_size=400)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=2048) | yamlish)
def test_model_card_parses_or_raises_format_error(body: str) -> None:
    for text in (body, "---\n" + body, "---\n" + body + "\n---\n"):
        with contextlib.suppress(FormatError):
            parse_model_card(text)


@pytest.mark.parametrize(
    ("config_class", "options", "expected"),
    [
        ("GPTQConfig", {"bits": 4, "group_size": 128}, Scheme("gptq", 4, 128)),
        ("AwqConfig", {"bits": 4, "group_size": 64}, Scheme("awq", 4, 64)),
        ("BitsAndBytesConfig", {"load_in_4bit": True}, Scheme("bitsandbytes", 4)),
        ("BitsAndBytesConfig", {"load_in_8bit": True}, Scheme("bitsandbytes", 8)),
    ],
)
def test_quantization_config_gives_the_scheme_to_unpack_with(
    tmp_path: Path, config_class: str, options: dict[str, Any], expected: Scheme
) -> None:
    quantization = getattr(transformers, config_class)(**options)
    assert parse_config(saved_config(tmp_path, quantization)).scheme == expected


def test_mlx_scheme_keeps_per_module_overrides() -> None:
    q = {
        "group_size": 64,
        "bits": 4,
        "model.layers.0.mlp.down_proj": {"group_size": 64, "bits": 6},
        "lm_head": {"bits": 8},
    }
    config = {"model_type": "qwen3", "quantization": q, "quantization_config": q}

    scheme = parse_config(json.dumps(config).encode()).scheme

    assert scheme == Scheme(
        "mlx", 4, 64, (("model.layers.0.mlp.down_proj", 6, 64), ("lm_head", 8, 64))
    )
    assert scheme.for_module("model.lm_head") == (8, 64)
    assert scheme.for_module("model.layers.1.mlp.down_proj") == (4, 64)


def test_mlx_mxfp4_mode_fixes_bits_and_group_size() -> None:
    config = {"model_type": "gpt_oss", "quantization": {"mode": "mxfp4"}}
    assert parse_config(json.dumps(config).encode()).scheme == Scheme("mlx", 4, 32)


def test_compressed_tensors_scheme_takes_bits_and_group_size_of_its_groups() -> None:
    weights = {"num_bits": 4, "type": "int", "strategy": "group", "group_size": 128}
    q = {
        "quant_method": "compressed-tensors",
        "format": "pack-quantized",
        "config_groups": {"group_0": {"targets": ["Linear"], "weights": weights}},
    }
    config = {"model_type": "llama", "quantization_config": q}

    scheme = parse_config(json.dumps(config).encode()).scheme

    assert scheme == Scheme("compressed-tensors", 4, 128)


def test_genai_config_names_family_and_context() -> None:
    genai = {"model": {"type": "phi3", "context_length": 4096, "decoder": {}}, "search": {}}

    info = parse_genai_config(json.dumps(genai).encode())

    assert (info.model_type, info.context_length, info.is_model) == ("phi3", 4096, True)
    assert parse_genai_config(b'{"search": {}}').is_model is False


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.integers() | st.floats() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
        max_leaves=30,
    )
)
def test_any_quantization_values_give_a_scheme_or_none(value: object) -> None:
    for key in ("quantization", "quantization_config"):
        config = {"model_type": "llama", key: value}
        scheme = parse_config(json.dumps(config).encode()).scheme
        assert scheme is None or isinstance(scheme, Scheme)
        genai = parse_genai_config(json.dumps({"model": value}).encode())
        assert genai.model_type is None or isinstance(genai.model_type, str)
