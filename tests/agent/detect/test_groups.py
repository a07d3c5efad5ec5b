"""Grouping real multi-file models: a transformers sharded save, gguf's own split writer, ONNX
external data, a coremltools .mlpackage; plus partial downloads and folder metadata.

No TensorFlow here: the SavedModel folder is laid out by hand after tf.saved_model.save's
documented layout (saved_model.pb, variables/variables.index, variables.data-*-of-*, assets/).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import gguf
import numpy as np
import onnx
import pytest
import torch
import transformers
from hypothesis import example, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from agent.detect.formats import ModelInfo, identify
from agent.detect.groups import (
    ModelGroup,
    apply_folder_metadata,
    group_model_files,
    is_partial_download,
    merge_infos,
    metadata_paths,
)


def listing_of(*roots: Path) -> dict[str, list[str]]:
    """Every folder under the roots with the names in it, as the scan shell collects them."""
    found: dict[str, list[str]] = {}
    for root in roots:
        for folder, dirs, files in os.walk(root):
            found[folder] = sorted(dirs + files)
    return found


def read_all(paths: Iterable[str]) -> dict[str, bytes]:
    return {p: Path(p).read_bytes() for p in paths}


def info_of(path: str | Path) -> ModelInfo:
    data = Path(path).read_bytes()
    info = identify(lambda offset, length: data[offset : offset + length], len(data))
    assert info is not None, path
    return info


def groups_for(*roots: Path, **options: object) -> list[ModelGroup]:
    listing = listing_of(*roots)
    return group_model_files(listing, read_all(metadata_paths(listing)), **options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A tiny Llama saved by transformers in 20 KB shards, with its index and config.json."""
    folder = tmp_path_factory.mktemp("sharded")
    config = transformers.LlamaConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        vocab_size=128,
        max_position_embeddings=2048,
    )
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config)
    model.save_pretrained(folder, max_shard_size="20KB")
    return folder, model.num_parameters()


def test_sharded_safetensors_with_index_is_one_model(sharded: tuple[Path, int]) -> None:
    folder, parameters = sharded
    shards = sorted(str(p) for p in folder.glob("model-*-of-*.safetensors"))
    assert len(shards) > 1

    groups = groups_for(folder, models=shards)

    assert len(groups) == 1
    group = groups[0]
    assert group.path == str(folder / "model.safetensors.index.json")
    assert (group.format, group.members, group.partial) == ("safetensors", tuple(shards), False)
    assert group.config is not None and group.config.architecture == "LlamaForCausalLM"
    merged = apply_folder_metadata(merge_infos([info_of(s) for s in shards]), group.config, None)
    assert merged.parameters == parameters
    assert (merged.architecture, merged.context_length) == ("llama", 2048)
    assert merged.architecture_class == "LlamaForCausalLM"
    assert merged.quantization == "F32"


def test_missing_shard_makes_the_set_partial(sharded: tuple[Path, int], tmp_path: Path) -> None:
    folder, _ = sharded
    gone = sorted(folder.glob("model-*.safetensors"))[1].name
    for item in folder.iterdir():
        if item.name != gone:
            (tmp_path / item.name).write_bytes(item.read_bytes())
    shards = sorted(str(p) for p in tmp_path.glob("model-*.safetensors"))

    (group,) = groups_for(tmp_path, models=shards)

    assert group.partial
    assert group.missing == (str(tmp_path / gone),)
    assert group.members == tuple(shards)


def test_unindexed_shards_are_grouped_by_their_numbering(
    sharded: tuple[Path, int], tmp_path: Path
) -> None:
    folder, _ = sharded
    shards = sorted(folder.glob("model-*.safetensors"))
    for item in shards[1:]:
        (tmp_path / item.name).write_bytes(item.read_bytes())

    (group,) = groups_for(tmp_path)

    assert group.path == str(tmp_path / shards[1].name)
    assert (group.format, len(group.members)) == ("safetensors", len(shards) - 1)
    assert group.missing == (str(tmp_path / shards[0].name),)


def test_gguf_split_files_are_one_model(tmp_path: Path) -> None:
    writer = gguf.GGUFWriter(tmp_path / "tiny.gguf", "llama", split_max_tensors=1)
    writer.add_name("Tiny Split")
    writer.add_context_length(512)
    writer.add_tensor("a.weight", np.ones((8, 8), dtype=np.float32))
    writer.add_tensor("b.weight", np.ones((4, 8), dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    splits = sorted(str(p) for p in tmp_path.glob("*.gguf"))
    assert [Path(s).name for s in splits] == [
        "tiny-00001-of-00002.gguf",
        "tiny-00002-of-00002.gguf",
    ]

    (group,) = groups_for(tmp_path, models=splits)
    merged = merge_infos([info_of(s) for s in group.members])

    assert (group.path, group.format, group.members) == (splits[0], "gguf", tuple(splits))
    assert merged.format == "gguf"
    assert merged.name == "Tiny Split"
    assert merged.parameters == 64 + 32


def onnx_with_external_data(folder: Path) -> Path:
    weight = numpy_helper.from_array(np.ones((64, 64), dtype=np.float32), name="W")
    node = helper.make_node("MatMul", ["X", "W"], ["Y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 64])],
        [weight],
    )
    path = folder / "model.onnx"
    onnx.save_model(
        helper.make_model(graph),
        str(path),
        save_as_external_data=True,
        location="model.onnx_data",
        size_threshold=0,
    )
    return path


def test_onnx_external_data_belongs_to_its_model(tmp_path: Path) -> None:
    model = onnx_with_external_data(tmp_path)

    (group,) = groups_for(tmp_path, models=[str(model)])

    assert group.path == str(model)
    assert group.members == (str(model), str(tmp_path / "model.onnx_data"))


def test_companions_named_by_the_parser_join_their_model(tmp_path: Path) -> None:
    model = tmp_path / "net.onnx"
    model.write_bytes(b"onnx")
    (tmp_path / "weights.bin").write_bytes(b"w")

    (group,) = groups_for(
        tmp_path,
        models=[str(model)],
        companions={str(model): ["weights.bin", "gone.bin", "../../etc/passwd"]},
    )

    assert group.members == (str(model), str(tmp_path / "weights.bin"))
    assert group.missing == (str(tmp_path / "gone.bin"),)
    assert group.partial


def test_mlpackage_folder_is_one_coreml_model(tmp_path: Path) -> None:
    import coremltools as ct  # type: ignore[import-untyped]  # slow to import: only here
    from coremltools.converters.mil import Builder as mb  # type: ignore[import-untyped]

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4))])  # type: ignore[untyped-decorator]
    def program(x: object) -> object:
        return mb.linear(x=x, weight=np.ones((4, 4), dtype=np.float32), name="y")

    package = tmp_path / "Tiny.mlpackage"
    ct.convert(program, convert_to="mlprogram", skip_model_load=True).save(str(package))

    (group,) = groups_for(tmp_path)

    assert (group.path, group.format, group.partial) == (str(package), "coreml", False)
    assert str(package / "Data" / "com.apple.CoreML" / "model.mlmodel") in group.members
    assert str(package / "Manifest.json") in group.members


def test_savedmodel_folder_is_one_model(tmp_path: Path) -> None:
    saved = tmp_path / "export"
    (saved / "variables").mkdir(parents=True)
    (saved / "assets").mkdir()
    (saved / "saved_model.pb").write_bytes(b"\x08\x01")
    (saved / "fingerprint.pb").write_bytes(b"\x08\x01")
    (saved / "variables" / "variables.index").write_bytes(b"i")
    (saved / "variables" / "variables.data-00000-of-00001").write_bytes(b"d")

    (group,) = groups_for(tmp_path)

    assert (group.path, group.format) == (str(saved), "tf_savedmodel")
    assert len(group.members) == 4


def test_partial_downloads_are_flagged_and_other_temp_files_ignored(tmp_path: Path) -> None:
    names = [
        "llama.gguf.part",
        "model.safetensors.tmp",
        "incomplete-Meta-Llama-3-8B.Q4_0.gguf",
        "qwen.gguf.downloadInProgress",
        "sha256-" + "a" * 64 + "-partial-3",
        "a" * 64 + ".incomplete",
        "notes.tmp",
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"x")

    groups = groups_for(tmp_path)

    partial = {Path(g.path).name for g in groups if g.partial and g.format is None}
    assert partial == set(names) - {"notes.tmp", "a" * 64 + ".incomplete"}
    hf_blob = str(tmp_path / ("a" * 64 + ".incomplete"))
    assert groups_for(tmp_path, models=[hf_blob])[-1].partial


def test_partial_names() -> None:
    assert is_partial_download("x.gguf.PART")
    assert is_partial_download("incomplete-x.gguf")
    assert not is_partial_download("model.gguf")
    assert not is_partial_download("sha256-" + "b" * 64)


def test_single_weights_file_gets_its_folder_config_and_card(tmp_path: Path) -> None:
    config = transformers.LlamaConfig(hidden_size=32, num_attention_heads=4)
    config.architectures = ["LlamaForCausalLM"]
    config.quantization_config = transformers.GPTQConfig(bits=4)
    config.save_pretrained(tmp_path)
    (tmp_path / "README.md").write_text("---\nlicense: apache-2.0\nbase_model: org/base\n---\n")
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"w")
    info = ModelInfo(format="safetensors", parameters=10, quantization="I32")

    (group,) = groups_for(tmp_path, models=[str(weights)])
    applied = apply_folder_metadata(info, group.config, group.card)

    assert group.members == (str(weights),)
    assert applied.quantization == "GPTQ-4bit"
    assert (applied.architecture, applied.architecture_class) == ("llama", "LlamaForCausalLM")
    assert (applied.license, applied.base_model) == ("apache-2.0", "org/base")


def test_subfolder_uses_the_repository_config(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "bert", "max_position_embeddings": 512}')
    (tmp_path / "onnx").mkdir()
    model = onnx_with_external_data(tmp_path / "onnx")

    (group,) = groups_for(tmp_path, models=[str(model)])

    assert group.config is not None and group.config.context_length == 512


def test_broken_metadata_is_a_problem_not_a_failure(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": ')
    (tmp_path / "README.md").write_text("---\nlicense: [\n---\n")
    (tmp_path / "model.safetensors.index.json").write_text('{"weight_map": {"a": "../x"}}')
    weights = tmp_path / "model.gguf"
    weights.write_bytes(b"w")

    (group,) = groups_for(tmp_path, models=[str(weights)])

    assert group.config is None and group.card is None
    assert len(group.problems) == 2


def test_merge_takes_the_quantization_holding_most_parameters() -> None:
    infos = [
        ModelInfo(format="safetensors", parameters=10, quantization="F32", name="a"),
        ModelInfo(format="safetensors", parameters=90, quantization="BF16", unsafe=False),
        ModelInfo(format="safetensors", parameters=5, quantization="F32", unsafe=True),
    ]
    merged = merge_infos(infos)
    assert (merged.parameters, merged.quantization, merged.name) == (105, "BF16", "a")
    assert merged.unsafe is True
    partly_known = merge_infos([infos[0], ModelInfo(format="safetensors")])
    assert partly_known.parameters is None


names = st.sampled_from(
    [
        "model.safetensors.index.json",
        "config.json",
        "README.md",
        "Manifest.json",
        "m-00001-of-00002.gguf",
        "model.onnx",
        "saved_model.pb",
        "variables",
        "x.part",
    ]
) | st.text(min_size=1, max_size=12).filter(lambda s: "/" not in s and s not in (".", ".."))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(names, st.binary(max_size=200), max_size=8), st.booleans())
def test_any_listing_and_bytes_group_without_failing(
    contents: dict[str, bytes], with_models: bool
) -> None:
    folder = os.path.join(os.sep, "scan", "dir")
    listing = {folder: sorted(contents)}
    files = {os.path.join(folder, n): b for n, b in contents.items()}
    models = list(files) if with_models else None

    groups = group_model_files(listing, files, models=models)

    members = [m for g in groups for m in g.members]
    assert len(members) == len(set(members))
    assert all(m.startswith(folder) for m in members)


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(
        st.text(max_size=10),
        st.text(max_size=30) | st.integers() | st.none(),
        max_size=6,
    )
)
@example(weight_map={"": "0", "0": "."})  # "." once passed as a shard: the folder itself
def test_hostile_weight_map_never_escapes_its_folder(weight_map: dict[str, object]) -> None:
    folder = os.path.join(os.sep, "m")
    index = json.dumps({"weight_map": weight_map}).encode()
    names = [
        "model.safetensors.index.json",
        *[v for v in weight_map.values() if isinstance(v, str)],
    ]
    listing = {folder: [n for n in names if n and "/" not in n and n not in (".", "..")]}

    groups = group_model_files(listing, {os.path.join(folder, names[0]): index})

    for group in groups:
        for path in (*group.members, *group.missing):
            assert os.path.normpath(path).startswith(folder + os.sep)
