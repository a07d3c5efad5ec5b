"""Keras HDF5 models told apart from other HDF5 files: models saved by Keras 3 (torch backend),
root attributes as older Keras wrote them (written with h5py, in every file-format version
h5py offers), HDF5 data files, and hostile object headers."""

from __future__ import annotations

import os
import struct
from dataclasses import replace
from pathlib import Path
from typing import Any

import h5py  # type: ignore[import-untyped]
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from p_fixtures import outcome, parsed

from agent.detect.formats import ModelInfo
from agent.detect.formats import hdf5 as reader
from agent.errors import FormatError

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SHIPPED = Path(h5py.__file__).parent / "tests" / "data_files"
CONFIG = '{"class_name": "Sequential", "config": {"name": "old", "layers": []}}'


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Models saved by Keras itself to its legacy HDF5 format."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras  # type: ignore[import-untyped]

    folder = tmp_path_factory.mktemp("keras")
    layers = keras.layers
    plain = keras.Sequential([keras.Input((4,)), layers.Dense(3), layers.Dense(2)], name="plain")
    with_lambda = keras.Sequential(
        [keras.Input((4,)), layers.Dense(3), layers.Lambda(lambda x: x * 2)], name="scaled"
    )
    inputs = keras.Input((4,))
    inner = keras.Sequential([layers.Dense(4), layers.Lambda(lambda x: x + 1)], name="inner")
    functional = keras.Model(inputs, layers.Dense(1)(inner(inputs)), name="outer")
    paths = {}
    for name, model in (("plain", plain), ("lambda", with_lambda), ("nested", functional)):
        paths[name] = folder / f"{name}.h5"
        model.save(paths[name])
    paths["version"] = folder / keras.__version__
    return paths


def test_a_keras_model_is_read(keras_files: dict[str, Path]) -> None:
    info = parsed(reader, keras_files["plain"].read_bytes())

    assert replace(info, header_bytes=0) == ModelInfo(
        format="hdf5",
        name="plain",
        architecture="Sequential",
        parameters=4 * 3 + 3 + 3 * 2 + 2,
        producer=f"keras {keras_files['version'].name}",
        unsafe=False,
        risk="none",
    )


def test_a_lambda_layer_makes_the_model_unsafe(keras_files: dict[str, Path]) -> None:
    info = parsed(reader, keras_files["lambda"].read_bytes())

    assert (info.risk, info.unsafe, info.unsafe_reasons) == (
        "dangerous",
        True,
        ("keras Lambda layer",),
    )


def test_a_lambda_inside_a_nested_model_is_found(keras_files: dict[str, Path]) -> None:
    info = parsed(reader, keras_files["nested"].read_bytes())

    assert (info.architecture, info.name, info.unsafe) == ("Functional", "outer", True)


def write(path: Path, attributes: dict[str, Any], **options: Any) -> bytes:
    with h5py.File(path, "w", **options) as f:
        for key, value in attributes.items():
            f.attrs[key] = value
        f.create_dataset("model_weights/dense/kernel", data=np.ones((4, 3), dtype=np.float32))
    return path.read_bytes()


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"libver": "latest"},
        {"libver": ("v108", "v108")},
        {"userblock_size": 512},
        {"userblock_size": 2048, "libver": "latest"},
        {"track_order": True, "libver": "latest"},
    ],
    ids=["default", "latest", "v108", "userblock", "userblock-latest", "creation-order"],
)
@pytest.mark.parametrize("string", [str, np.bytes_], ids=["vlen", "fixed"])
def test_keras_root_attributes_are_found_in_every_layout(
    tmp_path: Path, options: dict[str, Any], string: Any
) -> None:
    attributes = {
        "keras_version": string("2.2.4"),
        "backend": string("tensorflow"),
        "model_config": string(CONFIG),
        "training_config": string("{}"),
    }

    info = parsed(reader, write(tmp_path / "m.h5", attributes, **options))

    assert (info.producer, info.architecture, info.name, info.unsafe) == (
        "keras 2.2.4",
        "Sequential",
        "old",
        False,
    )


def test_weights_file_with_a_version_and_no_config_is_keras(tmp_path: Path) -> None:
    data = write(tmp_path / "w.h5", {"keras_version": "2.15.0", "layer_names": [b"dense"]})

    info = parsed(reader, data)

    assert (info.producer, info.architecture, info.unsafe) == ("keras 2.15.0", None, None)


def test_a_model_config_that_is_no_json_is_refused(tmp_path: Path) -> None:
    data = write(tmp_path / "bad.h5", {"keras_version": "3.0.0", "model_config": "{not json"})

    result = outcome(reader, data)

    assert isinstance(result, FormatError) and "not JSON" in result.reason


@pytest.mark.parametrize(
    "attributes",
    [
        {},
        {"description": "sensor readings", "version": 3},
        {"keras": "mentioned in a value only", "note": "keras_version model_config"},
        {f"a{i}": i for i in range(40)},
    ],
    ids=["no-attributes", "other-attributes", "keras-in-values", "dense-attributes"],
)
def test_hdf5_data_files_are_not_models(tmp_path: Path, attributes: dict[str, Any]) -> None:
    data = write(tmp_path / "data.h5", attributes, libver="latest")

    assert reader.claims(data[:4096], len(data))
    assert outcome(reader, data) is None


def test_hdf5_files_h5py_ships_are_not_models() -> None:
    paths = sorted(SHIPPED.glob("*.h5"))
    assert paths

    for path in paths:
        assert outcome(reader, path.read_bytes()) is None, path


def test_signature_past_the_first_superblock_offsets_is_not_claimed() -> None:
    data = bytes(4096) + b"\x89HDF\r\n\x1a\n" + bytes(64)

    assert not reader.claims(data[:4096], len(data))


def superblock_v0(root: int) -> bytes:
    """A version 0 superblock with 8-byte addresses whose root group header is at `root`."""
    fixed = b"\x89HDF\r\n\x1a\n" + bytes([0, 0, 0, 0, 0, 8, 8, 0]) + struct.pack("<HHI", 4, 16, 0)
    addresses = struct.pack("<QQQQ", 0, 2**64 - 1, 4096, 2**64 - 1)
    return fixed + addresses + struct.pack("<QQII", 0, root, 0, 0) + bytes(16)


def v1_header(messages: bytes) -> bytes:
    return struct.pack("<BBHII", 1, 0, 1, 1, len(messages)) + bytes(4) + messages


def test_a_continuation_that_loops_is_refused() -> None:
    root = 96
    loop = struct.pack("<HHB3x", 0x10, 16, 0) + struct.pack("<QQ", root + 16, 24)
    data = (superblock_v0(root) + bytes(root))[:root] + v1_header(loop) + bytes(64)

    result = outcome(reader, data)

    assert isinstance(result, FormatError) and "blocks" in result.reason


def test_a_message_longer_than_its_header_is_refused() -> None:
    root = 96
    message = struct.pack("<HHB3x", 0x0C, 4000, 0) + bytes(8)
    data = (superblock_v0(root) + bytes(root))[:root] + v1_header(message) + bytes(64)

    result = outcome(reader, data)

    assert isinstance(result, FormatError) and "passes" in result.reason


def test_every_cut_of_a_keras_file_is_refused_or_read_the_same(
    keras_files: dict[str, Path],
) -> None:
    data = keras_files["lambda"].read_bytes()
    whole = parsed(reader, data)

    for cut in range(0, len(data), 7):
        result = outcome(reader, data[:cut])
        if isinstance(result, ModelInfo):
            assert result == whole, cut
        else:
            assert result is None or isinstance(result, FormatError), cut


@FUZZ
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_give_a_model_none_or_format_error(data: bytes) -> None:
    outcome(reader, data, force=True)


@FUZZ
@given(st.sampled_from([0, 512, 1024, 2048]), st.binary(max_size=3000))
def test_bytes_after_the_signature_give_a_model_none_or_format_error(at: int, rest: bytes) -> None:
    outcome(reader, bytes(at) + b"\x89HDF\r\n\x1a\n" + rest)


@FUZZ
@given(st.data())
def test_damaged_keras_files_give_a_model_none_or_format_error(
    keras_files: dict[str, Path], data: st.DataObject
) -> None:
    damaged = bytearray(keras_files["lambda"].read_bytes())
    # The superblock, the root object header and the global heap sit in the first 4 KiB.
    for _ in range(data.draw(st.integers(1, 8))):
        damaged[data.draw(st.integers(0, 4095))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(damaged)))

    outcome(reader, bytes(damaged[:cut]))


def keras2_file(path: Path, libver: str, layers: dict[str, list[tuple[int, ...]]]) -> Path:
    """The layout Keras 2 wrote: model_weights/<layer>/<layer>/<weight>:0, next to optimizer
    state that is not part of the model."""
    with h5py.File(path, "w", libver=libver) as f:
        f.attrs["keras_version"] = "2.15.0"
        f.attrs["backend"] = "tensorflow"
        f.attrs["model_config"] = CONFIG
        weights = f.create_group("model_weights")
        for layer, shapes in layers.items():
            group = weights.create_group(layer).create_group(layer)
            for i, shape in enumerate(shapes):
                group.create_dataset(f"w{i}:0", data=np.zeros(shape, np.float32))
        f.create_group("optimizer_weights").create_dataset("m", data=np.zeros(1000))
    return path


@pytest.mark.parametrize("libver", ["earliest", "v108", "v110", "v112", "latest"])
def test_a_keras_hdf5_model_reports_its_parameter_count(tmp_path: Path, libver: str) -> None:
    layers = {"dense": [(4, 3), (3,)], "dense_1": [(3, 2), (2,)]}

    info = parsed(reader, keras2_file(tmp_path / "m.h5", libver, layers).read_bytes())

    assert info.parameters == 4 * 3 + 3 + 3 * 2 + 2


def test_many_layers_are_counted_through_the_group_b_tree(tmp_path: Path) -> None:
    layers = {f"dense_{i}": [(2, 3)] for i in range(300)}

    info = parsed(reader, keras2_file(tmp_path / "m.h5", "earliest", layers).read_bytes())

    assert info.parameters == 300 * 6


def test_groups_in_dense_storage_give_no_count_rather_than_a_wrong_one(tmp_path: Path) -> None:
    layers = {f"dense_{i}": [(2, 3)] for i in range(40)}

    info = parsed(reader, keras2_file(tmp_path / "m.h5", "latest", layers).read_bytes())

    assert info.parameters is None and info.producer == "keras 2.15.0"
