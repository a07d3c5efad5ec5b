"""Keras 3 `.keras` archives saved by Keras itself (torch backend): name, class, version, and
Lambda layers flagged; decoys and broken archives refused with a reason."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.detect.formats import ModelInfo, ReadAt, keras3
from agent.errors import FormatError

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Keras picks its backend once per process from the environment, so the models are saved
# by a child process rather than by changing this one's environment.
SAVE_MODELS = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import keras

    out = Path(sys.argv[1])
    plain = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2)], name="tiny"
    )
    plain.save(out / "plain.keras")
    with_lambda = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3), keras.layers.Lambda(lambda x: x * 2)]
    )
    with_lambda.save(out / "lambda.keras")
    inputs = keras.Input((4,))
    functional = keras.Model(inputs, keras.layers.Dense(1)(inputs), name="func")
    functional.save(out / "functional.keras")
    print(keras.__version__)
    """
)


def reader(data: bytes) -> ReadAt:
    return lambda offset, length: data[offset : offset + length]


def parse_bytes(data: bytes) -> ModelInfo | None:
    return keras3.parse(reader(data), len(data))


def make_zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, bytes], str]:
    out = tmp_path_factory.mktemp("keras")
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    done = subprocess.run(
        [sys.executable, "-c", SAVE_MODELS, str(out)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    files = {p.stem: p.read_bytes() for p in Path(out).glob("*.keras")}
    return files, done.stdout.strip().splitlines()[-1]


def test_a_saved_sequential_model(saved: tuple[dict[str, bytes], str]) -> None:
    files, version = saved
    data = files["plain"]

    info = parse_bytes(data)

    assert keras3.claims(data[:64], len(data))
    assert info is not None
    assert (info.format, info.name, info.architecture) == ("keras", "tiny", "Sequential")
    assert info.producer == f"keras {version}"
    assert info.unsafe is False and info.unsafe_reasons == ()


def test_a_functional_model_names_its_class(saved: tuple[dict[str, bytes], str]) -> None:
    info = parse_bytes(saved[0]["functional"])

    assert info is not None and (info.name, info.architecture) == ("func", "Functional")


def test_a_lambda_layer_makes_the_model_unsafe(saved: tuple[dict[str, bytes], str]) -> None:
    info = parse_bytes(saved[0]["lambda"])

    assert info is not None and (info.risk, info.unsafe) == ("dangerous", True)
    assert info.unsafe_reasons == ("keras Lambda layer",)


@pytest.mark.parametrize(
    "files",
    [
        {"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w:document/>"},
        {"notes.txt": b"hello", "config.json": b"{}"},
    ],
    ids=["docx", "text"],
)
def test_other_zips_are_not_keras(files: dict[str, bytes]) -> None:
    data = make_zip(files)

    assert not keras3.claims(data[:64], len(data))
    assert parse_bytes(data) is None


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        (b"not json", "config.json is not JSON"),
        (b"[1, 2]", "config.json is not a JSON object"),
        (b"[" * 100_000 + b"]" * 100_000, "config.json is not JSON"),
    ],
    ids=["text", "list", "deep"],
)
def test_a_broken_config_says_which_file_and_why(config: bytes, reason: str) -> None:
    data = make_zip({"metadata.json": b'{"keras_version": "3.0.0"}', "config.json": config})

    with pytest.raises(FormatError, match=reason):
        parse_bytes(data)


def test_a_lambda_deep_in_nested_layers_is_found() -> None:
    layer: dict[str, object] = {"class_name": "Lambda", "config": {"name": "hidden"}}
    for _ in range(200):
        layer = {"class_name": "Sequential", "config": {"layers": [layer]}}
    data = make_zip({"metadata.json": b"{}", "config.json": json.dumps(layer).encode()})

    info = parse_bytes(data)

    assert info is not None and info.unsafe_reasons == ("keras Lambda layer",)
    assert info.producer == "keras"


def test_odd_but_valid_json_is_read_without_surprises() -> None:
    config = {"class_name": ["not", "a", "name"], "config": {"name": {"x": 1}, "layers": [[]]}}
    data = make_zip(
        {"metadata.json": b'{"keras_version": 3}', "config.json": json.dumps(config).encode()}
    )

    info = parse_bytes(data)

    assert info is not None
    assert (info.name, info.architecture, info.producer, info.unsafe) == (
        None,
        None,
        "keras",
        False,
    )


def test_every_cut_of_a_saved_model_is_none_or_an_error(
    saved: tuple[dict[str, bytes], str],
) -> None:
    data = saved[0]["plain"]
    for cut in range(0, len(data), 11):
        with contextlib.suppress(FormatError):
            assert parse_bytes(data[:cut]) is None


@FUZZ
@given(st.data())
def test_mutated_archives_parse_or_raise_format_error(
    saved: tuple[dict[str, bytes], str], data: st.DataObject
) -> None:
    original = bytearray(saved[0][data.draw(st.sampled_from(["plain", "lambda"]))])
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(0, len(original) - 1))
        original[at] = data.draw(st.integers(0, 255))
    with contextlib.suppress(FormatError):
        parse_bytes(bytes(original))


@pytest.mark.parametrize(
    ("module", "name", "risk", "reason"),
    [
        ("os", "system", "dangerous", "keras config imports dangerous os.system"),
        (
            "my_project.layers",
            "Scale",
            "suspicious",
            "keras config imports my_project.layers.Scale",
        ),
        ("keras.layers", "Dense", "none", None),
    ],
)
def test_a_reference_outside_keras_is_judged_by_what_it_imports(
    module: str, name: str, risk: str, reason: str | None
) -> None:
    layer = {"module": module, "class_name": name, "config": {"name": "x"}}
    config = {"class_name": "Sequential", "config": {"name": "m", "layers": [layer]}}

    info = keras3.parse(*_archive(config))

    assert info is not None and info.risk == risk
    assert info.unsafe_reasons == ((reason,) if reason else ())


def _archive(config: dict[str, object]) -> tuple[ReadAt, int]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("metadata.json", json.dumps({"keras_version": "3.10.0"}))
        z.writestr("config.json", json.dumps(config))
    data = buffer.getvalue()
    return (lambda o, n: data[o : o + n]), len(data)
