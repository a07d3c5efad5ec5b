"""PyTorch checkpoints written by torch itself: zips, TorchScript, the legacy pickle layout, a
malicious pickle swapped into a real archive, and cut or mutated files."""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.detect.formats import ModelInfo, ReadAt, pytorch
from agent.detect.formats.pickle_scan import scan_bytes
from agent.detect.formats.unsafe import Verdict, verdict
from agent.errors import FormatError

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Linear(4, 3) + Linear(3, 2): weights and biases.
PARAMETERS = 4 * 3 + 3 + 3 * 2 + 2
SYSTEM = f"{os.system.__module__}.system"


class Shell:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("echo pwned",))


def reader(data: bytes) -> ReadAt:
    return lambda offset, length: data[offset : offset + length]


def parse_bytes(data: bytes) -> ModelInfo | None:
    return pytorch.parse(reader(data), len(data))


def tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Every checkpoint kind, written by torch."""
    root = tmp_path_factory.mktemp("torch")
    model = tiny()
    paths = {name: root / f"{name}.pt" for name in ("state", "whole", "legacy", "legacy4")}
    torch.save(model.state_dict(), paths["state"])
    torch.save(model, paths["whole"])
    torch.save(model.state_dict(), paths["legacy"], _use_new_zipfile_serialization=False)
    torch.save(
        model.state_dict(),
        paths["legacy4"],
        _use_new_zipfile_serialization=False,
        pickle_protocol=4,
    )
    paths["scripted"] = root / "scripted.pt"
    paths["traced"] = root / "traced.pt"
    with warnings.catch_warnings():
        # torch.jit is deprecated in favour of torch.export, but TorchScript files are still
        # everywhere, and these are the real thing.
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted: Any = torch.jit.script(model)
        traced: Any = torch.jit.trace(model, torch.ones(1, 4))  # type: ignore[no-untyped-call]
    scripted.save(str(paths["scripted"]))
    traced.save(str(paths["traced"]))
    return {name: path.read_bytes() for name, path in paths.items()}


def swap_data_pkl(archive: bytes, payload: bytes) -> bytes:
    """Rewrite a real torch zip with its data.pkl replaced, the way a tampered file looks."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(archive)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = payload if info.filename.endswith("/data.pkl") else src.read(info)
            dst.writestr(info.filename, data, compress_type=zipfile.ZIP_STORED)
    return out.getvalue()


def test_a_state_dict_is_counted_from_its_storages(files: dict[str, bytes]) -> None:
    info = parse_bytes(files["state"])

    assert info is not None
    assert (info.format, info.parameters, info.quantization) == ("pytorch", PARAMETERS, "F32")
    assert (info.tensor_count, info.architecture, info.producer) == (4, None, "torch")
    assert info.unsafe is False and info.unsafe_reasons == ()


def test_every_import_of_a_state_dict_is_allowed(files: dict[str, bytes]) -> None:
    with zipfile.ZipFile(io.BytesIO(files["state"])) as z:
        data = z.read(next(n for n in z.namelist() if n.endswith("/data.pkl")))

    assert all(verdict(name) is Verdict.ALLOWED for name in scan_bytes(data).imports)


def test_a_pickled_module_of_torch_classes_is_no_risk(files: dict[str, bytes]) -> None:
    info = parse_bytes(files["whole"])

    assert info is not None and info.format == "pytorch"
    assert info.architecture == "Sequential" and info.parameters == PARAMETERS
    assert (info.risk, info.unsafe, info.unsafe_reasons) == ("none", False, ())


@pytest.mark.parametrize("name", ["legacy", "legacy4"])
def test_the_legacy_format_reads_like_the_zip(files: dict[str, bytes], name: str) -> None:
    info = parse_bytes(files[name])

    assert pytorch.claims(files[name][:64], len(files[name]))
    assert info is not None
    assert (info.format, info.parameters, info.quantization, info.unsafe) == (
        "pytorch",
        PARAMETERS,
        "F32",
        False,
    )


@pytest.mark.parametrize("name", ["scripted", "traced"])
def test_torchscript_carries_code(files: dict[str, bytes], name: str) -> None:
    info = parse_bytes(files[name])

    assert info is not None
    assert (info.format, info.parameters, info.architecture) == (
        "torchscript",
        PARAMETERS,
        "Sequential",
    )
    assert (info.risk, info.unsafe) == ("suspicious", False)
    assert info.unsafe_reasons == ("torchscript code",)


def test_a_malicious_pickle_inside_a_real_archive_is_named(files: dict[str, bytes]) -> None:
    payload = pickle.dumps({"weight": Shell()}, protocol=2)
    tampered = swap_data_pkl(files["state"], payload)

    info = parse_bytes(tampered)

    assert info is not None and info.unsafe
    assert info.unsafe_reasons == (f"dangerous import {SYSTEM}",)


def test_half_precision_and_shared_storage(tmp_path: Path) -> None:
    weight = torch.ones(8, 8, dtype=torch.float16)
    path = tmp_path / "tied.pt"
    # Two names for one tensor (tied embeddings) share one storage, counted once.
    torch.save({"embed": weight, "lm_head": weight, "step": torch.tensor(3)}, path)

    info = parse_bytes(path.read_bytes())

    assert info is not None and (info.parameters, info.quantization) == (65, "F16")


def test_a_cut_archive_is_an_error_not_a_model(files: dict[str, bytes]) -> None:
    data = files["state"]

    with pytest.raises(FormatError, match="cut short"):
        parse_bytes(data[: len(data) // 2])
    for cut in range(0, len(data), 7):
        with contextlib.suppress(FormatError):
            assert parse_bytes(data[:cut]) is None


def test_every_cut_of_a_legacy_file_is_an_error(files: dict[str, bytes]) -> None:
    data = files["legacy"]
    end_of_pickles = data.rfind(b".", 0, 700)
    for cut in range(16, end_of_pickles, 5):
        with pytest.raises(FormatError):
            parse_bytes(data[:cut])


def test_other_zips_are_not_claimed_or_parsed(tmp_path: Path) -> None:
    path = tmp_path / "doc.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", "<w:document/>")
    data = path.read_bytes()

    assert not pytorch.claims(data[:64], len(data))
    assert parse_bytes(data) is None


@pytest.mark.parametrize("name", ["state", "whole", "scripted"])
def test_torch_heads_are_claimed(files: dict[str, bytes], name: str) -> None:
    assert pytorch.claims(files[name][:64], len(files[name]))


@FUZZ
@given(st.data())
def test_mutated_checkpoints_parse_or_raise_format_error(
    files: dict[str, bytes], data: st.DataObject
) -> None:
    original = bytearray(files[data.draw(st.sampled_from(["state", "legacy", "scripted"]))])
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(0, len(original) - 1))
        original[at] = data.draw(st.integers(0, 255))
    with contextlib.suppress(FormatError):
        result = parse_bytes(bytes(original))
        assert result is None or isinstance(result, ModelInfo)


class ReadsAFile(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.from_file("/etc/hostname", False, 4, dtype=torch.uint8)
        return x + y.sum()


class KeepsSizes(torch.nn.Module):
    """Like silero-vad: a list attribute, which TorchScript saves through
    torch.jit._pickle.build_intlist."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes = [256, 512]
        self.linear = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) * self.sizes[0]


def scripted(module: torch.nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(module), buffer)
    return buffer.getvalue()


def test_torchscript_with_list_attributes_is_suspicious_not_dangerous() -> None:
    data = scripted(KeepsSizes())
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        pickled = z.read(next(n for n in z.namelist() if n.endswith("/data.pkl")))

    info = parse_bytes(data)

    assert "torch.jit._pickle.build_intlist" in scan_bytes(pickled).imports
    assert info is not None and (info.risk, info.unsafe) == ("suspicious", False)


def test_torchscript_code_that_reads_files_is_dangerous() -> None:
    info = parse_bytes(scripted(ReadsAFile()))

    assert info is not None and (info.risk, info.unsafe) == ("dangerous", True)
    assert "torchscript code calls torch.from_file" in info.unsafe_reasons


def test_a_second_data_pickle_only_the_local_headers_list_is_judged(
    files: dict[str, bytes],
) -> None:
    payload = pickle.dumps({"weight": Shell()}, protocol=2)
    extra = io.BytesIO()
    with zipfile.ZipFile(extra, "w") as z:
        z.writestr("archive/extra/evil.pkl", payload)
    member = extra.getvalue()[: extra.getvalue().index(b"PK\x01\x02")]
    # In front of the archive: its local header is there, the central directory omits it (zip
    # readers take leading bytes for a self-extractor stub and shift every offset).
    fixed = member + files["state"]

    info = parse_bytes(bytes(fixed))

    assert info is not None and info.risk == "dangerous"
