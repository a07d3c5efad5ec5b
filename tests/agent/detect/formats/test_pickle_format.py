"""Raw pickles and joblib files written by pickle, joblib and scikit-learn: models are found
and named, plain data is not a model, malicious pickles are reported and never loaded."""

from __future__ import annotations

import bz2
import contextlib
import gzip
import lzma
import os
import pickle
import zlib
from pathlib import Path
from typing import Any

import joblib  # type: ignore[import-untyped]
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.ensemble import RandomForestClassifier  # type: ignore[import-untyped]
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

from agent.detect.formats import ModelInfo, ReadAt, pickle_format
from agent.detect.formats.pickle_scan import MAX_OPCODES
from agent.errors import FormatError

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SYSTEM = f"{os.system.__module__}.system"
# coef_ (1x3) + intercept_ (1) + classes_ (2) + n_iter_ (1)
LOGISTIC_ARRAYS = 7


class Shell:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("echo pwned",))


def reader(data: bytes) -> ReadAt:
    return lambda offset, length: data[offset : offset + length]


def parse_bytes(data: bytes) -> ModelInfo | None:
    return pickle_format.parse(reader(data), len(data))


def claimed(data: bytes) -> bool:
    return pickle_format.claims(data[:4096], len(data))


@pytest.fixture(scope="module")
def logistic() -> LogisticRegression:
    rng = np.random.default_rng(0)
    x = rng.random((20, 3))
    return LogisticRegression().fit(x, (x[:, 0] > 0.5).astype(int))


@pytest.fixture(scope="module")
def dumps(
    logistic: LogisticRegression, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("joblib")
    options: dict[str, Any] = {"plain": 0, "zlib": 3, "gzip": ("gzip", 3)}
    out = {}
    for name, compress in options.items():
        path = root / f"{name}.joblib"
        joblib.dump(logistic, path, compress=compress)
        out[name] = path.read_bytes()
    return out


@pytest.mark.parametrize("name", ["plain", "zlib", "gzip"])
def test_a_joblib_dump_of_a_scikit_learn_model(dumps: dict[str, bytes], name: str) -> None:
    data = dumps[name]

    info = parse_bytes(data)

    assert claimed(data)
    assert info is not None
    assert (info.format, info.producer, info.architecture) == (
        "pickle",
        "joblib",
        "LogisticRegression",
    )
    assert (info.parameters, info.quantization) == (LOGISTIC_ARRAYS, "F64")
    assert (info.risk, info.unsafe, info.unsafe_reasons) == ("none", False, ())


def test_a_forest_steps_over_every_array_joblib_writes_raw(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.random((50, 4))
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, x[:, 1] > 0.5)
    path = tmp_path / "forest.joblib"
    joblib.dump(forest, path)

    info = parse_bytes(path.read_bytes())

    assert info is not None and info.architecture == "RandomForestClassifier"
    assert info.header_bytes == path.stat().st_size


def test_a_plain_pickle_of_a_fitted_model(logistic: LogisticRegression) -> None:
    info = parse_bytes(pickle.dumps(logistic, protocol=5))

    assert info is not None and info.architecture == "LogisticRegression"
    assert info.producer is None and info.parameters == LOGISTIC_ARRAYS


@pytest.mark.parametrize("protocol", [2, 5])
def test_numpy_arrays_are_counted(protocol: int) -> None:
    data = pickle.dumps({"w": np.ones((3, 4), np.float16), "b": np.ones(4, np.float32)}, protocol)

    info = parse_bytes(data)

    assert info is not None and (info.parameters, info.quantization) == (16, "F16")
    assert info.unsafe is False


@pytest.mark.parametrize(
    "value",
    [{"a": 1, "b": [1, 2, 3]}, ["x", "y"], {"nested": {"deep": (1.5, None, b"raw")}}],
    ids=["dict", "list", "nested"],
)
@pytest.mark.parametrize("protocol", range(6))
def test_plain_data_is_not_a_model(value: object, protocol: int) -> None:
    data = pickle.dumps(value, protocol=protocol)

    assert parse_bytes(data) is None


@pytest.mark.parametrize("protocol", range(6))
def test_a_malicious_pickle_is_reported_without_loading_it(protocol: int) -> None:
    data = pickle.dumps({"config": Shell()}, protocol=protocol)

    info = parse_bytes(data)

    assert claimed(data)
    assert info is not None and info.format == "pickle" and info.unsafe
    assert info.unsafe_reasons == (f"dangerous import {SYSTEM}",)


def test_a_payload_inside_a_joblib_object_array_is_found(tmp_path: Path) -> None:
    path = tmp_path / "objects.joblib"
    joblib.dump({"labels": np.array(["a", Shell()], dtype=object)}, path)

    info = parse_bytes(path.read_bytes())

    assert info is not None and f"dangerous import {SYSTEM}" in info.unsafe_reasons


def test_a_payload_hidden_after_ten_million_opcodes_is_not_trusted() -> None:
    data = b"\x80\x04" + b"N0" * 5_000_000 + pickle.dumps(Shell(), protocol=4)[2:]

    info = parse_bytes(data)

    assert info is not None and info.risk == "suspicious"
    assert info.unsafe_reasons == (
        f"pickle not fully scanned: stopped after {MAX_OPCODES} opcodes",
    )


JOBLIB_DATA = Path(joblib.__file__).parent / "test" / "data"


@pytest.mark.parametrize(
    "name",
    sorted(p.name for p in JOBLIB_DATA.glob("joblib_*") if p.suffix in (".pkl", ".gz", ".gzip")),
)
def test_the_pickles_joblib_ships_from_old_versions_are_read(name: str) -> None:
    data = (JOBLIB_DATA / name).read_bytes()

    info = parse_bytes(data)

    assert claimed(data)
    assert info is not None and info.format == "pickle"
    assert (info.risk, info.unsafe) == ("none", False)


@pytest.mark.parametrize("suffix", [".xz", ".lzma", ".bz2"])
def test_joblib_files_compressed_with_xz_lzma_and_bz2_are_read(suffix: str) -> None:
    path = JOBLIB_DATA / f"joblib_0.10.0_pickle_py34_np19.pkl{suffix}"
    data = path.read_bytes()

    info = parse_bytes(data)

    assert claimed(data)
    assert info is not None and info.producer == "joblib" and info.risk == "none"


def test_a_gzipped_pickle_numpy_ships_is_read() -> None:
    path = Path(np.__file__).parent / "random" / "tests" / "data" / "sfc64_np126.pkl.gz"

    info = parse_bytes(path.read_bytes())

    assert info is not None and (info.risk, info.unsafe_reasons) == ("none", ())


def test_compressed_files_that_hold_no_pickle_are_not_models() -> None:
    text = b"just some log lines\n" * 200

    assert parse_bytes(zlib.compress(text)) is None
    assert parse_bytes(gzip.compress(text)) is None
    assert parse_bytes(b"\x78\x9c" + bytes(range(256))) is None


def test_torch_legacy_files_are_left_to_the_pytorch_reader() -> None:
    head = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.\x80\x02M\xe9\x03."

    assert not pickle_format.claims(head, 1000)


@pytest.mark.parametrize(
    "data",
    [b"", b"(hello world)\n", b"cat notes.txt\n", b"\x89PNG\r\n\x1a\n" + bytes(64)],
)
def test_other_files_are_not_claimed(data: bytes) -> None:
    assert not claimed(data)


def test_every_cut_of_a_joblib_file_is_an_error(dumps: dict[str, bytes]) -> None:
    data = dumps["plain"]
    for cut in range(1, len(data)):
        with pytest.raises(FormatError):
            parse_bytes(data[:cut])


@FUZZ
@given(st.binary(max_size=400))
def test_arbitrary_bytes_parse_or_raise_format_error(data: bytes) -> None:
    wrapped = (zlib.compress(data), bz2.compress(data), lzma.compress(data), b"\x5d\x00\x00" + data)
    for candidate in (data, b"\x80\x04" + data, b"\x00\xff" + data, *wrapped):
        with contextlib.suppress(FormatError):
            pickle_format.claims(candidate[:4096], len(candidate))
            parse_bytes(candidate)


@FUZZ
@given(st.data())
def test_mutated_joblib_files_parse_or_raise_format_error(
    dumps: dict[str, bytes], data: st.DataObject
) -> None:
    original = bytearray(dumps[data.draw(st.sampled_from(["plain", "zlib"]))])
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(0, len(original) - 1))
        original[at] = data.draw(st.integers(0, 255))
    with contextlib.suppress(FormatError):
        parse_bytes(bytes(original))
