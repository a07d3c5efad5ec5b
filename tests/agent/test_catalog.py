"""The catalog: kind from files beside a model, numeric arrays dropped, origin and owner fields."""

from __future__ import annotations

import json
import os
import pwd
import shutil
from pathlib import Path

import gguf
import numpy as np
import pytest
from safetensors.numpy import save_file

from agent.catalog import NoStores, catalog_models, model_fields
from agent.detect.model import FileObservation
from agent.detect.stores import Provenance as StoreProvenance
from agent.sensors.files import observe_file
from agent.sensors.packages import PackageOwners

pytestmark = pytest.mark.skipif(os.name != "posix", reason="file owners by uid")


def observe(*paths: Path) -> list[FileObservation]:
    found = [observe_file(p, p.stat(), hash_contents=False) for p in paths]
    return [obs for obs in found if obs is not None]


def weights(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"w": np.ones((64, 64), dtype=np.float32)}, str(path))
    return path


def by_path(observations: list[FileObservation]) -> dict[str, str | None]:
    return {os.path.basename(m.path): m.info.kind for m in catalog_models(observations)}


def test_kind_comes_from_config_json_and_the_model_card(tmp_path: Path) -> None:
    llm = weights(tmp_path / "llm/model.safetensors")
    (llm.parent / "config.json").write_text(
        json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama"})
    )
    embedder = weights(tmp_path / "minilm/model.safetensors")
    (embedder.parent / "config.json").write_text(
        json.dumps({"architectures": ["BertModel"], "model_type": "bert"})
    )
    card = "---\nlibrary_name: sentence-transformers\npipeline_tag: sentence-similarity\n---\n"
    (embedder.parent / "README.md").write_text(card + "# MiniLM\n")
    plain = weights(tmp_path / "plain/model.safetensors")
    kinds = {m.path: m.info.kind for m in catalog_models(observe(llm, embedder, plain))}
    assert kinds[str(llm)] == "llm"
    assert kinds[str(embedder)] == "embedding"
    assert kinds[str(plain)] is None  # nothing says: absent, not guessed from "model"


def test_kind_of_a_lone_gguf_comes_from_its_architecture(tmp_path: Path) -> None:
    path = tmp_path / "llama-named-but-bert.gguf"
    writer = gguf.GGUFWriter(path, "bert")
    writer.add_tensor("token_embd.weight", np.ones((64, 32), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert by_path(observe(path)) == {path.name: "embedding"}


def test_numeric_arrays_outside_a_model_folder_are_not_models(tmp_path: Path) -> None:
    loose = tmp_path / "tests/data/values.npy"
    loose.parent.mkdir(parents=True)
    np.save(loose, np.arange(4096, dtype=np.float64))
    objects = tmp_path / "tests/data/objects.npy"
    np.save(objects, np.array([{"a": 1}] * 300, dtype=object), allow_pickle=True)
    in_model = tmp_path / "model/embeddings.npy"
    in_model.parent.mkdir()
    np.save(in_model, np.ones((128, 64), dtype=np.float32))
    (in_model.parent / "config.json").write_text(
        json.dumps({"architectures": ["BertModel"], "model_type": "bert"})
    )
    observations = observe(loose, objects, in_model)
    assert len(observations) == 3  # all three are read as numpy arrays
    kept = {os.path.basename(m.primary.path) for m in catalog_models(observations)}
    assert kept == {"objects.npy", "embeddings.npy"}


def test_fields_carry_origin_package_and_owner(tmp_path: Path) -> None:
    site = tmp_path / "lib/python3.11/site-packages"
    model = weights(site / "vendor_models/data/model.safetensors")
    dist = site / "vendor_models-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Name: vendor-models\nVersion: 1.0\n")
    (dist / "RECORD").write_text("vendor_models/data/model.safetensors,,\n")
    mine = weights(tmp_path / "Downloads/model.safetensors")
    owners = PackageOwners()
    rows = {
        m.path: model_fields(m, None, NoStores(), owners=owners)
        for m in catalog_models(observe(model, mine))
    }
    me = pwd.getpwuid(os.getuid()).pw_name
    assert rows[str(model)]["ai.model.origin"] == "package"
    assert rows[str(model)]["ai.model.package"] == "vendor-models 1.0"
    assert rows[str(mine)]["ai.model.origin"] == "user"
    assert "ai.model.package" not in rows[str(mine)]
    assert {r["user.name"] for r in rows.values()} == {me}


def test_a_file_owned_by_another_account_names_that_account(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("changing a file's owner needs root")
    other = next((p for p in pwd.getpwall() if p.pw_uid not in (0, os.getuid())), None)
    if other is None:
        pytest.skip("no second account on this machine")
    path = weights(tmp_path / "theirs/model.safetensors")
    shutil.chown(path, user=other.pw_uid)
    (found,) = catalog_models(observe(path))
    assert model_fields(found, None, NoStores())["user.name"] == other.pw_name


class OneStore:
    """A store index that knows one path, as agent.detect.stores would."""

    def __init__(self, path: str) -> None:
        self.path = path

    def lookup(self, path: str) -> StoreProvenance | None:
        if path != self.path:
            return None
        return StoreProvenance("huggingface", "hf:org/tiny@main", "org/tiny", None)

    def canonical_path(self, path: str) -> str:
        return path


def test_a_store_file_is_store_origin_even_inside_a_package_tree(tmp_path: Path) -> None:
    # A Hugging Face cache kept under a virtual environment is still the cache.
    path = weights(tmp_path / "venv/lib/python3.11/site-packages/hub/model.safetensors")
    (found,) = catalog_models(observe(path))
    fields = model_fields(found, None, OneStore(str(path)))
    assert (fields["ai.model.origin"], fields["ai.model.store"]) == ("store", "huggingface")
    assert "ai.model.package" not in fields
