"""Identification rate over a tree of model files of every format among non-model files and
decoys, and full hashing throughput against hashlib in the same run.

Each format's exemplar is written once by that format's own library and copied through the
tree (a quarter of the copies renamed `.bin`, since content decides, not the extension); a
format whose writer library is not installed is skipped and named.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import shutil
import tempfile
import time
import warnings
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from agent.sensors.files import ScanStats, scan, sha256_file

TARGET_MODELS_PER_SECOND = 1_000
TARGET_HASH_RATIO = 0.9
Writer = Callable[[Path], None]
# The writer libraries are imported where used (any may be missing); several ship no types.


def _gguf(path: Path, tokens: int = 2000) -> None:
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), "llama")
    writer.add_name("bench")
    writer.add_context_length(4096)
    writer.add_token_list([f"tok{n}" for n in range(tokens)])
    writer.add_token_scores([0.0] * tokens)
    writer.add_token_types([1] * tokens)
    writer.add_tensor("token_embd.weight", np.zeros((64, 16), dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _gguf_32k(path: Path) -> None:
    # The vocabulary size of Llama 2 and Mistral 7B: real headers are mostly tokenizer arrays.
    _gguf(path, tokens=32_000)


def _safetensors(path: Path) -> None:
    from safetensors.numpy import save_file

    save_file({"w": np.zeros((32, 32), dtype=np.float32)}, str(path), metadata={"format": "pt"})


def _onnx(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((16, 16), dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "bench",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])],
        initializer=[weight],
    )
    onnx.save(helper.make_model(graph, producer_name="bench"), str(path))


def _torch_module() -> Any:
    import torch

    return torch.nn.Linear(16, 16)


def _pytorch(path: Path) -> None:
    import torch

    torch.save(_torch_module().state_dict(), path)


def _pytorch_legacy(path: Path) -> None:
    import torch

    torch.save(_torch_module().state_dict(), path, _use_new_zipfile_serialization=False)


def _torchscript(path: Path) -> None:
    import torch

    torch.jit.script(_torch_module()).save(str(path))


def _sklearn_model() -> Any:
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

    return LogisticRegression().fit(np.eye(4), [0, 1, 0, 1])


def _pickle(path: Path) -> None:
    path.write_bytes(pickle.dumps(_sklearn_model()))


def _joblib(path: Path) -> None:
    import joblib  # type: ignore[import-untyped]

    joblib.dump(_sklearn_model(), path)


def _keras_model() -> Any:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras  # type: ignore[import-untyped]

    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])


def _keras(path: Path) -> None:
    _keras_model().save(path.with_suffix(".keras"))
    path.with_suffix(".keras").rename(path)


def _keras_h5(path: Path) -> None:
    _keras_model().save(path.with_suffix(".h5"))
    path.with_suffix(".h5").rename(path)


def _tflite(path: Path) -> None:
    import flatbuffers  # type: ignore[import-untyped]

    # The schema's generated builder functions, all at package level.
    import tflite as t  # type: ignore[import-untyped]

    b = flatbuffers.Builder(1024)
    name = b.CreateString("w")
    t.TensorStartShapeVector(b, 2)
    for dim in (4, 4):
        b.PrependInt32(dim)
    shape = b.EndVector()
    t.TensorStart(b)
    t.TensorAddShape(b, shape)
    t.TensorAddName(b, name)
    t.TensorAddBuffer(b, 0)
    tensors = _vector(b, t.SubGraphStartTensorsVector, [t.TensorEnd(b)])
    t.SubGraphStart(b)
    t.SubGraphAddTensors(b, tensors)
    subgraph = t.SubGraphEnd(b)
    t.BufferStart(b)
    buffer = t.BufferEnd(b)
    description = b.CreateString("bench")
    subgraphs = _vector(b, t.ModelStartSubgraphsVector, [subgraph])
    buffers = _vector(b, t.ModelStartBuffersVector, [buffer])
    t.ModelStart(b)
    t.ModelAddVersion(b, 3)
    t.ModelAddSubgraphs(b, subgraphs)
    t.ModelAddBuffers(b, buffers)
    t.ModelAddDescription(b, description)
    b.Finish(t.ModelEnd(b), file_identifier=b"TFL3")
    path.write_bytes(bytes(b.Output()))


def _vector(b: Any, start: Callable[[Any, int], None], items: list[int]) -> Any:
    start(b, len(items))
    for item in reversed(items):
        b.PrependUOffsetTRelative(item)
    return b.EndVector()


def _coreml(path: Path) -> None:
    from coremltools.proto import Model_pb2  # type: ignore[import-untyped]

    model = Model_pb2.Model(specificationVersion=4)
    model.description.metadata.shortDescription = "bench"
    model.description.metadata.author = "bench"
    feature = model.description.input.add()
    feature.name = "x"
    feature.type.multiArrayType.shape.append(4)
    layer = model.neuralNetwork.layers.add()
    layer.name = "dense"
    layer.innerProduct.inputChannels = layer.innerProduct.outputChannels = 4
    layer.innerProduct.weights.floatValue.extend([0.5] * 16)
    path.write_bytes(model.SerializeToString())


def _npy(path: Path) -> None:
    with path.open("wb") as f:
        np.save(f, np.zeros((32, 32), dtype=np.float32))


def _npz(path: Path) -> None:
    with path.open("wb") as f:
        np.savez(f, w=np.zeros((32, 32), dtype=np.float32), b=np.zeros(32, dtype=np.float32))


def _llamafile(path: Path) -> None:
    # llamafile's layout: an executable with a zip appended that stores the GGUF uncompressed.
    shutil.copyfile("/bin/true", path)
    weights = path.with_suffix(".gguf")
    _gguf(weights)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_STORED) as archive:
        archive.write(weights, "bench.gguf")
    weights.unlink()


# kind -> (extension, writer); the kind names the file so the report can group by it.
MODEL_WRITERS: dict[str, tuple[str, Writer]] = {
    "gguf": (".gguf", _gguf),
    "gguf_32k": (".gguf", _gguf_32k),
    "safetensors": (".safetensors", _safetensors),
    "onnx": (".onnx", _onnx),
    "pytorch": (".pt", _pytorch),
    "pytorch_legacy": (".pt", _pytorch_legacy),
    "torchscript": (".pt", _torchscript),
    "pickle": (".pkl", _pickle),
    "joblib": (".joblib", _joblib),
    "keras": (".keras", _keras),
    "keras_h5": (".h5", _keras_h5),
    "tflite": (".tflite", _tflite),
    "coreml": (".mlmodel", _coreml),
    "numpy": (".npy", _npy),
    "npz": (".npz", _npz),
    "llamafile": (".llamafile", _llamafile),
}
# Formats the agent knows that no installed library writes as one file.
NOT_WRITTEN = {
    "ggml": "no library writes legacy GGML/GGJT",
    "tf_savedmodel": "a directory that only tensorflow writes",
    "coreml .mlpackage": "a directory that coremltools writes only from a converted model",
}


def _hdf5_data(path: Path) -> None:
    import h5py  # type: ignore[import-untyped]

    with h5py.File(path, "w") as f:
        f.create_dataset("readings", data=np.arange(256, dtype=np.float64))


def _plain_zip(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("word/document.xml", "<w:document/>" * 20)


def _other_protobuf(path: Path) -> None:
    from google.protobuf import descriptor_pb2

    message = descriptor_pb2.FileDescriptorProto(name="bench.proto", package="bench")
    message.message_type.add(name="Reading").field.add(name="value", number=1, type=1)
    path.write_bytes(message.SerializeToString())


def _plain_pickle(path: Path) -> None:
    path.write_bytes(pickle.dumps({"counts": list(range(100)), "label": "not a model"}))


def _partial_download(path: Path) -> None:
    _gguf(path)
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size // 3)


DECOY_WRITERS: dict[str, tuple[str, Writer]] = {
    "hdf5_data": (".h5", _hdf5_data),
    "plain_zip": (".docx", _plain_zip),
    "other_protobuf": (".pb", _other_protobuf),
    "plain_pickle": (".pkl", _plain_pickle),
    "partial_gguf": (".gguf.part", _partial_download),
}


def _exemplars(
    writers: dict[str, tuple[str, Writer]], folder: Path
) -> tuple[dict[str, Path], dict[str, str]]:
    """One file per kind written by its library; kinds whose writer failed, with the reason."""
    made, skipped = {}, {}
    logging.disable(logging.WARNING)  # the writer libraries' chatter is not a benchmark figure
    try:
        for kind, (ext, write) in writers.items():
            path = folder / f"{kind}{ext}"
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    write(path)
            except ImportError as e:
                skipped[kind] = f"{e.name or e} not installed"
                continue
            except Exception as e:  # a writer's own failure costs one format, not the run
                skipped[kind] = f"{type(e).__name__}: {e}"
                continue
            made[kind] = path
    finally:
        logging.disable(logging.NOTSET)
    return made, skipped


def _spread(exemplars: dict[str, Path], root: Path, count: int) -> None:
    """`count` copies, the kinds in turn, under root/<kind>/<folder>/."""
    kinds = sorted(exemplars)
    for i in range(count if kinds else 0):
        kind = kinds[i % len(kinds)]
        folder = root / kind / f"d{i % 7}"
        folder.mkdir(parents=True, exist_ok=True)
        ext = ".bin" if i % 4 == 3 else "".join(exemplars[kind].suffixes)
        shutil.copyfile(exemplars[kind], folder / f"{kind}-{i}{ext}")


def _tree(root: Path, work: Path, models: int, others: int) -> tuple[int, list[str]]:
    """Models under root/models, everything else under root/other; returns how many model
    files were written and a line per skipped format."""
    model_files, skipped = _exemplars(MODEL_WRITERS, work)
    decoy_files, decoys_skipped = _exemplars(DECOY_WRITERS, work)
    _spread(model_files, root / "models", models)
    _spread(decoy_files, root / "other", others // 10)
    for i in range(others - others // 10):
        folder = root / "other" / f"src{i % 100}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i}.py").write_bytes(os.urandom(64) + b"print('hello')\n" * 20)
    lines = [f"skipped {kind}: {why}" for kind, why in {**skipped, **NOT_WRITTEN}.items()]
    lines += [f"skipped decoy {kind}: {why}" for kind, why in decoys_skipped.items()]
    return (models if model_files else 0), lines


def _timed_scan(root: Path) -> tuple[Counter[str], ScanStats, float]:
    """What a scan found, by the kind its file name records and the format it was given."""
    stats = ScanStats()
    found: Counter[str] = Counter()
    t0 = time.perf_counter()
    for obs in scan([root], hash_contents=False, stats=stats):
        found[f"{Path(obs.path).name.split('-')[0]} as {obs.info.format}"] += 1
    return found, stats, time.perf_counter() - t0


def identification(models: int = 2000, others: int = 8000) -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        root, work = Path(tmp) / "tree", Path(tmp) / "exemplars"
        root.mkdir()
        work.mkdir()
        offered, skipped = _tree(root, work, models, others)
        yield from skipped
        yield from _per_kind(root / "models", offered)
        found, stats, elapsed = _timed_scan(root)
        decoys = sum(n for key, n in found.items() if key.split(" ")[0] not in MODEL_WRITERS)
        yield (
            f"identification of the whole tree: {stats.files_seen} files in {elapsed:.2f} s = "
            f"{stats.files_seen / elapsed:,.0f} files/s; decoys reported as models: {decoys}; "
            f"unreadable or broken: {stats.error_count}"
        )


def _per_kind(models: Path, offered: int) -> Iterator[str]:
    """A scan of each kind's folder: its rate, and what the files were identified as."""
    total_time, identified = 0.0, 0
    for folder in sorted(p for p in models.iterdir() if p.is_dir()) if offered else []:
        found, stats, elapsed = _timed_scan(folder)
        total_time += elapsed
        identified += sum(found.values())
        as_what = ", ".join(f"{key.split(' as ')[1]} {n}" for key, n in found.items()) or "none"
        yield (
            f"  {folder.name}: {stats.files_seen / elapsed:,.0f} files/s, "
            f"{sum(found.values())}/{stats.files_seen} identified as {as_what}"
        )
    rate = offered / total_time if total_time else 0.0
    verdict = "met" if rate >= TARGET_MODELS_PER_SECOND else "NOT met"
    yield (
        f"identification of model files (warm cache): {offered} in {total_time:.2f} s = "
        f"{rate:,.0f} model files/s, {identified} identified (target >= "
        f"{TARGET_MODELS_PER_SECOND:,} model files/s on {os.cpu_count()} cores: {verdict})"
    )


def _best_of(rounds: int, *runs: Callable[[], object]) -> list[float]:
    """Each run's fastest time over interleaved rounds: noise from other work on the machine
    only ever adds time, and interleaving exposes both runs to the same page cache state."""
    best = [float("inf")] * len(runs)
    for _ in range(rounds):
        for i, run in enumerate(runs):
            t0 = time.perf_counter()
            run()
            best[i] = min(best[i], time.perf_counter() - t0)
    return best


def hashing(size: int = 512 * 2**20, rounds: int = 5) -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "blob.bin"
        with path.open("wb") as f:
            for _ in range(size // 2**24):
                f.write(os.urandom(2**24))

        def reference() -> str:
            with path.open("rb") as f:
                return hashlib.file_digest(f, "sha256").hexdigest()

        assert sha256_file(path) == reference()
        ref_time, our_time = _best_of(rounds, reference, lambda: sha256_file(path))
        ratio = ref_time / our_time
        verdict = "met" if ratio >= TARGET_HASH_RATIO else "NOT met"
        yield (
            f"sha256 of {size >> 20} MiB, best of {rounds}: hashlib.file_digest "
            f"{size / ref_time / 1e9:.2f} GB/s, sha256_file {size / our_time / 1e9:.2f} GB/s, "
            f"ratio {ratio:.2f} (target >= {TARGET_HASH_RATIO}: {verdict})"
        )


def run() -> Iterator[str]:
    yield from identification()
    yield from hashing()
