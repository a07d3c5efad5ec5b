"""The demo's model files: real ones the agent identifies, and a pickle it calls dangerous."""

from __future__ import annotations

import pickletools
from pathlib import Path

import numpy as np
import onnxruntime as ort
from demo_models import ONNX_NAME, PICKLE_COMMAND, PICKLE_NAME, dangerous_pickle, write_demo_folder

from agent.detect.formats import identify


def _identify(path: Path) -> object:
    data = path.read_bytes()
    return identify(lambda offset, n: data[offset : offset + n], len(data))


def test_the_pickle_would_call_os_system_and_the_agent_says_dangerous() -> None:
    data = dangerous_pickle()
    ops = [(op.name, arg) for op, arg, _ in pickletools.genops(data)]  # reads, never loads
    assert ops == [
        ("PROTO", 2),
        ("GLOBAL", "os system"),
        ("BINUNICODE", PICKLE_COMMAND.decode()),
        ("TUPLE1", None),
        ("REDUCE", None),
        ("STOP", None),
    ]
    found = identify(lambda offset, n: data[offset : offset + n], len(data))
    assert found is not None
    assert (found.format, found.risk, found.unsafe) == ("pickle", "dangerous", True)
    assert any("os" in reason and "system" in reason for reason in found.unsafe_reasons)


def test_every_file_of_the_folder_is_identified_by_content(tmp_path: Path) -> None:
    written = write_demo_folder(tmp_path)
    formats = {path.name: getattr(_identify(path), "format", None) for path in written}
    assert formats == {
        "demo-llama-f16.gguf": "gguf",
        "notes.bin": "gguf",
        "classifier.safetensors": "safetensors",
        ONNX_NAME: "onnx",
        PICKLE_NAME: "pickle",
    }
    assert _identify(tmp_path / "README.txt") is None


def test_the_onnx_model_classifies_a_batch(tmp_path: Path) -> None:
    write_demo_folder(tmp_path)
    session = ort.InferenceSession(str(tmp_path / ONNX_NAME), providers=["CPUExecutionProvider"])
    (scores,) = session.run(None, {"x": np.ones((5, 4), dtype=np.float32)})
    assert scores.shape == (5, 3)
    assert np.allclose(scores.sum(axis=1), 1.0, atol=1e-5)
