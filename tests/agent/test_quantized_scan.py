"""The seed's models through `shadowai-agent scan`: each layout at its full apparent size
(real headers and configs, sparse data) comes out as one model with its family, its weights
before quantization and its quantization."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from agent.cli import main
from bench import model_layouts as layouts

LLAMA_33_70B = 70_553_706_496  # Meta's published count for Llama 3.3 70B
QWEN25_7B = 7_615_616_512  # Qwen2.5-7B-Instruct's model card
PHI3_MINI = 3_821_079_552  # Phi-3-mini-4k-instruct's model card


def scan(folder: Path) -> list[dict[str, object]]:
    out, err = io.StringIO(), io.StringIO()
    status = main(
        ["scan", "--no-processes", "--no-hash", "--format", "json", str(folder)], out=out, err=err
    )
    assert status == 0, err.getvalue()
    assert "warning" not in err.getvalue(), err.getvalue()
    return [json.loads(line) for line in out.getvalue().splitlines()]


def one_model(folder: Path) -> dict[str, object]:
    (model,) = scan(folder)
    return model


def facts(model: dict[str, object]) -> tuple[object, ...]:
    return tuple(
        model.get(f"ai.model.{key}")
        for key in ("architecture", "parameters", "parameters_estimated", "quantization")
    )


def test_mlx_llama_70b_4bit_counts_70b_not_the_packed_11b(tmp_path: Path) -> None:
    weights = layouts.mlx_folder(
        tmp_path / "Llama-3.3-70B-Instruct-4bit", "llama", layouts.LLAMA_70B
    )

    model = one_model(tmp_path)

    assert weights == LLAMA_33_70B
    assert facts(model) == ("llama", LLAMA_33_70B, True, "MLX-4bit")
    assert model["ai.model.architecture_class"] == "LlamaForCausalLM"
    assert model["ai.model.file_count"] == 8  # the shards, as the issue found them


def test_mlx_qwen_folder_is_one_qwen2_model(tmp_path: Path) -> None:
    layouts.mlx_folder(tmp_path / "Qwen2.5-7B-Instruct-4bit", "qwen2", layouts.QWEN25_7B)

    model = one_model(tmp_path)

    assert facts(model) == ("qwen2", QWEN25_7B, True, "MLX-4bit")
    assert model["ai.model.architecture_class"] == "Qwen2ForCausalLM"


def test_mlx_with_3_bits_in_a_6_bit_config_is_stored_count_not_a_guess(tmp_path: Path) -> None:
    folder = tmp_path / "mislabelled"
    layouts.mlx_folder(folder, "qwen2", layouts.QWEN25_7B, bits=3, group_size=64)
    config = json.loads((folder / "config.json").read_text())
    config["quantization"] = config["quantization_config"] = {"group_size": 64, "bits": 6}
    (folder / "config.json").write_text(json.dumps(config))

    model = one_model(tmp_path)

    assert model["ai.model.parameters_estimated"] is False
    assert model["ai.model.parameters"] < QWEN25_7B  # the stored words and groups


def test_gptq_llama_shards_count_the_weights_qweight_packs(tmp_path: Path) -> None:
    layouts.gptq_folder(tmp_path / "Llama-3.3-70B-Instruct-GPTQ", "llama", layouts.LLAMA_70B)

    model = one_model(tmp_path)

    assert facts(model) == ("llama", LLAMA_33_70B, True, "GPTQ-4bit")


def test_gptq_without_bits_in_its_config_reports_the_stored_count(tmp_path: Path) -> None:
    folder = tmp_path / "gptq"
    layouts.gptq_folder(folder, "llama", layouts.LLAMA_70B)
    config = json.loads((folder / "config.json").read_text())
    del config["quantization_config"]["bits"]
    (folder / "config.json").write_text(json.dumps(config))

    model = one_model(tmp_path)

    assert model["ai.model.parameters_estimated"] is False
    assert model["ai.model.parameters"] < LLAMA_33_70B / 4


def test_onnx_runtime_genai_phi3_int4_folder_is_one_phi3_model(tmp_path: Path) -> None:
    layouts.onnx_genai_folder(tmp_path / "phi3-mini-4k-instruct-cpu-int4", "phi3", {})

    model = one_model(tmp_path)

    assert facts(model) == ("phi3", PHI3_MINI, True, "INT4")
    assert model["ai.model.context_length"] == 4096
    assert model["ai.model.file_count"] == 2
    assert "ai.model.name" not in model  # "main_graph" is the exporter's, not the model's


def test_nemotron_3_nano_hybrid_mamba_moe_is_one_nemotron_h_model(tmp_path: Path) -> None:
    weights = layouts.plain_folder(
        tmp_path / "NVIDIA-Nemotron-3-Nano-30B-A3B-BF16", "nemotron_h", layouts.NEMOTRON_3_NANO
    )

    model = one_model(tmp_path)

    assert 31.5e9 < weights < 31.7e9  # NVIDIA's model card: 31.6B in total
    assert facts(model) == ("nemotron_h", weights, True, "BF16")
    assert model["ai.model.architecture_class"] == "NemotronHForCausalLM"
    assert model["ai.model.context_length"] == 262144


def test_nemotron_gguf_names_the_same_family_as_its_config(tmp_path: Path) -> None:
    config = layouts.hf_config("nemotron_h", layouts.NEMOTRON_3_NANO)
    shapes = layouts.weight_shapes(config)
    # llama.cpp names the MoE variant of the family nemotron_h_moe.
    layouts.gguf_file(
        tmp_path / "Nemotron-3-Nano-30B-A3B-Q4_K_M.gguf",
        "nemotron_h_moe",
        shapes,
        name="Nemotron 3 Nano 30B A3B",
        context_length=262144,
    )

    model = one_model(tmp_path)

    assert facts(model)[:2] == ("nemotron_h", layouts.parameters(shapes))
    assert model["ai.model.quantization"] == "Q4_K_M"


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_gguf_and_safetensors_of_one_model_name_one_family(tmp_path: Path, arch: str) -> None:
    values = layouts.LLAMA_70B if arch == "llama" else layouts.QWEN25_7B
    layouts.mlx_folder(tmp_path / "mlx", arch, values)
    shapes = layouts.weight_shapes(layouts.hf_config(arch, values))
    layouts.gguf_file(tmp_path / "model.gguf", arch, shapes, name=arch, context_length=4096)

    models = scan(tmp_path)

    assert len(models) == 2
    assert {m["ai.model.architecture"] for m in models} == {arch}
    assert len({m["ai.model.parameters"] for m in models}) == 1


def test_gemma3_multimodal_mlx_folder_is_one_gemma3_model(tmp_path: Path) -> None:
    text = {"hidden_size": 2560, "intermediate_size": 10240, "num_hidden_layers": 34,
            "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
            "vocab_size": 262208, "max_position_embeddings": 131072}  # fmt: skip
    values = {"architectures": ["Gemma3ForConditionalGeneration"], "text_config": text}
    weights = layouts.mlx_folder(tmp_path / "gemma-3-4b-it-4bit", "gemma3", values)

    model = one_model(tmp_path)

    assert facts(model) == ("gemma3", weights, True, "MLX-4bit")
    assert model["ai.model.architecture_class"] == "Gemma3ForConditionalGeneration"
    assert model["ai.model.context_length"] == 131072  # from the nested text_config


def test_bitsandbytes_nf4_folder_counts_two_weights_a_byte(tmp_path: Path) -> None:
    folder = tmp_path / "Qwen2.5-7B-Instruct-bnb-4bit"
    config = layouts.hf_config("qwen2", layouts.QWEN25_7B)
    shapes = layouts.weight_shapes(config)
    quantization = {"quant_method": "bitsandbytes", "load_in_4bit": True}
    layouts.write_config(folder, config, quantization_config=quantization)
    layouts.write_shards(folder, layouts.bnb4_tensors(shapes))

    model = one_model(tmp_path)

    assert facts(model) == ("qwen2", QWEN25_7B, True, "BNB-4bit")
