"""`shadowai-agent scan`: table, JSON lines, CycloneDX ML-BOM and the progress bar."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path

import gguf
import numpy as np
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.cli import main
from agent.report import ScanProgress, human_bytes, human_count, render_table
from agent.sensors.files import ScanStats


class TtyStream(io.StringIO):
    """A stream that says it is a terminal, as stderr does in an interactive shell."""

    def isatty(self) -> bool:
        return True


def run_scan(*argv: str, err: io.StringIO | None = None) -> tuple[int, str, str]:
    """A files-only scan: inference processes are covered by their own tests, and other
    tests may be running some while this one looks."""
    out, err = io.StringIO(), err if err is not None else io.StringIO()
    status = main(["scan", "--no-processes", *argv], out=out, err=err)
    return status, out.getvalue(), err.getvalue()


def model_folder(tmp_path: Path, *models: Path) -> Path:
    """The fixture models among files that are no models."""
    folder = tmp_path / "models"
    folder.mkdir()
    for model in models:
        shutil.copy(model, folder / model.name)
    (folder / "notes.txt").write_text("not a model\n" * 20)
    (folder / "run.py").write_text("print('hello')\n" * 20)
    return folder


def test_cyclonedx_scan_of_real_models_validates_and_carries_their_hashes(
    tmp_path: Path, gguf_model: Path, safetensors_model: Path
) -> None:
    folder = model_folder(tmp_path, gguf_model, safetensors_model)
    status, out, _ = run_scan("--format", "cyclonedx", str(folder))
    assert status == 0
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(out) is None
    components = json.loads(out)["components"]
    expected = {
        str(folder / p.name): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in (gguf_model, safetensors_model)
    }
    found = {
        c["evidence"]["occurrences"][0]["location"]: c["hashes"][0]["content"] for c in components
    }
    assert found == expected
    assert {c["type"] for c in components} == {"machine-learning-model"}
    gguf_component = next(c for c in components if c["name"] == "Tiny Llama Test")
    assert gguf_component["modelCard"]["modelParameters"]["modelArchitecture"] == "llama"


def test_cyclonedx_scan_of_a_folder_without_models_is_a_valid_empty_bom(tmp_path: Path) -> None:
    status, out, _ = run_scan("--format", "cyclonedx", str(model_folder(tmp_path)))
    assert status == 0
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(out) is None
    assert json.loads(out).get("components", []) == []


def test_json_scan_of_a_model_and_a_text_file_prints_one_line(
    tmp_path: Path, gguf_model: Path
) -> None:
    folder = model_folder(tmp_path, gguf_model)
    status, out, _ = run_scan("--format", "json", str(folder))
    assert status == 0
    (line,) = out.splitlines()
    event = json.loads(line)
    assert event["event.dataset"] == "shadowai.model_file"
    assert event["file.path"] == str(folder / gguf_model.name)
    assert event["ai.model.format"] == "gguf"
    assert event["file.hash.sha256"] == hashlib.sha256(gguf_model.read_bytes()).hexdigest()


def test_no_hash_leaves_the_hash_out(tmp_path: Path, gguf_model: Path) -> None:
    _, out, _ = run_scan("--format", "json", "--no-hash", str(model_folder(tmp_path, gguf_model)))
    assert "file.hash.sha256" not in json.loads(out)


def test_the_table_lists_models_in_path_order_with_a_summary(
    tmp_path: Path, gguf_model: Path, safetensors_model: Path
) -> None:
    status, out, _ = run_scan(str(model_folder(tmp_path, gguf_model, safetensors_model)))
    assert status == 0
    header, first, second, summary = out.splitlines()
    assert header.split() == ["FORMAT", "PARAMS", "QUANT", "SIZE", "MODEL", "PATH"]
    assert first.split()[0] == "gguf" and first.endswith("model.gguf")
    assert second.split()[0] == "safetensors" and second.endswith("model.safetensors")
    assert summary.startswith("2 model files (gguf 1, safetensors 1)")
    assert summary.endswith("; 0 unsafe")


def row(path: str, **fields: object) -> dict[str, object]:
    return {"file.path": path, "file.size": 4_368_439_584, "ai.model.format": "gguf", **fields}


def test_the_table_fits_80_columns_by_cutting_paths_from_the_left() -> None:
    deep = "/home/dev/" + "/".join(f"folder{i}" for i in range(20)) + "/llama-3-8b.Q4_K_M.gguf"
    rows = [
        row(deep, **{"ai.model.name": "A model name far too long for its column"}),
        row("/m/short.gguf", **{"ai.model.parameters": 8_030_261_248}),
    ]
    lines = render_table(rows, width=80).splitlines()
    assert all(len(line) <= 80 for line in lines)
    path_cell = lines[1].split()[-1]
    assert path_cell.startswith("\u2026") and deep.endswith(path_cell[1:])
    assert path_cell.endswith("folder19/llama-3-8b.Q4_K_M.gguf")
    assert "A model name" in lines[1] and "column" not in lines[1]
    assert lines[2].endswith("/m/short.gguf")


def test_without_a_width_the_table_keeps_whole_paths() -> None:
    deep = "/x" * 100 + "/m.gguf"
    assert deep in render_table([row(deep)], width=None)


def test_unsafe_models_are_marked_and_counted() -> None:
    rows = [row("/a.pt", **{"ai.model.unsafe": True, "ai.model.format": "pytorch"}), row("/b")]
    lines = render_table(rows, width=80).splitlines()
    assert lines[1].startswith("!")
    assert not lines[2].startswith("!")
    assert lines[-1] == "2 model files (gguf 1, pytorch 1), 8.1G; 1 unsafe"


def test_an_empty_table_says_so() -> None:
    assert render_table([], width=80).splitlines()[-1] == "0 model files; 0 unsafe"


def test_control_characters_in_a_model_name_never_reach_the_terminal(tmp_path: Path) -> None:
    path = tmp_path / "hostile.gguf"
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name("evil\x1b]0;pwned\x07\x1b[2J")
    writer.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    status, out, _ = run_scan(str(tmp_path))
    assert status == 0
    assert "evil?]0;pwned??[2J" in out
    assert "\x1b" not in out and "\x07" not in out


def test_the_progress_bar_is_drawn_on_a_terminal(tmp_path: Path, gguf_model: Path) -> None:
    err = TtyStream()
    status, _, text = run_scan("--format", "json", str(model_folder(tmp_path, gguf_model)), err=err)
    assert status == 0
    assert "\r\x1b[K" in text
    assert " files, " in text and " models, " in text and " hashed " in text
    assert text.endswith("\r\x1b[K")  # the line is cleared before the results are read


def test_no_progress_bar_when_stderr_is_no_terminal(tmp_path: Path, gguf_model: Path) -> None:
    status, _, text = run_scan(str(model_folder(tmp_path, gguf_model)))
    assert status == 0
    assert text == ""


def test_the_progress_line_redraws_at_most_once_per_interval() -> None:
    stream, now = TtyStream(), [0.0]
    progress = ScanProgress(stream, clock=lambda: now[0], interval=0.1)
    progress.update(ScanStats(files_seen=1), 0, "/a")
    progress.update(ScanStats(files_seen=2), 0, "/b")
    now[0] = 0.5
    progress.update(ScanStats(files_seen=3, models_found=1), 2048, "/c")
    assert stream.getvalue() == (
        "\r\x1b[K1 files, 0 models, 0B hashed  /a\r\x1b[K3 files, 1 models, 2.0K hashed  /c"
    )


def test_the_progress_line_fits_the_terminal_and_keeps_the_file_name() -> None:
    stream = TtyStream()
    progress = ScanProgress(stream, columns=60)
    progress.update(ScanStats(files_seen=12), 0, "/very/long" * 20 + "/model.gguf")
    line = stream.getvalue().removeprefix("\r\x1b[K")
    assert len(line) <= 59
    assert line.endswith("/model.gguf")


def test_a_path_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    status, out, err = run_scan(str(tmp_path / "missing"))
    assert status == 2
    assert out == ""
    assert "missing: no such file or directory" in err


def test_a_broken_model_is_a_warning_and_the_scan_still_succeeds(
    tmp_path: Path, gguf_model: Path
) -> None:
    (tmp_path / "cut.gguf").write_bytes(gguf_model.read_bytes()[:200])
    status, out, err = run_scan("--format", "json", str(tmp_path))
    assert status == 0
    assert out == ""
    assert "cut.gguf" in err and err.startswith("warning: ")


def test_sizes_and_parameter_counts_read_as_people_say_them() -> None:
    assert [human_bytes(n) for n in (0, 1023, 1536, 180_104, 4_368_439_584)] == [
        "0B",
        "1023B",
        "1.5K",
        "176K",
        "4.1G",
    ]
    assert [human_count(n) for n in (900, 2048, 135_000_000, 7_241_732_096)] == [
        "900",
        "2.0K",
        "135M",
        "7.2B",
    ]
    assert human_count(None) == human_bytes("x") == "-"


ANY_TEXT = st.text(st.characters(codec=None, categories=None), max_size=120)
TABLE_ROWS = st.fixed_dictionaries(
    {"file.path": ANY_TEXT},
    optional={
        "file.size": st.integers(min_value=0, max_value=2**63),
        "ai.model.format": ANY_TEXT,
        "ai.model.name": ANY_TEXT,
        "ai.model.quantization": ANY_TEXT,
        "ai.model.parameters": st.integers(min_value=0, max_value=2**63),
        "ai.model.unsafe": st.booleans(),
    },
)


@settings(max_examples=200, deadline=None)
@given(st.lists(TABLE_ROWS, max_size=5), st.integers(min_value=80, max_value=200))
def test_any_header_values_give_a_fitting_table_free_of_control_characters(
    rows: list[dict[str, object]], width: int
) -> None:
    lines = render_table(rows, width=width).splitlines()
    assert all(len(line) <= width for line in lines[:-1])
    assert len(lines) == len(rows) + 2  # nothing in a value starts a line of its own
    assert not any(ch < " " or "\x7f" <= ch <= "\x9f" for line in lines for ch in line)
    "\n".join(lines).encode("utf-8")  # printable on any UTF-8 terminal


def test_scan_names_an_ollama_model_by_its_tag_and_checks_the_blob_digest(
    tmp_path: Path, gguf_model: Path
) -> None:
    """Ollama's layout (manifests/<registry>/<namespace>/<model>/<tag>, blobs/sha256-<hex>),
    found through OLLAMA_MODELS as the real server does; the scan runs as a process so the
    environment is its own."""
    import hashlib
    import os
    import subprocess
    import sys

    store = tmp_path / "ollama"
    content = gguf_model.read_bytes()
    digest = hashlib.sha256(content).hexdigest()
    (store / "blobs").mkdir(parents=True)
    (store / "blobs" / f"sha256-{digest}").write_bytes(content)
    manifest = store / "manifests" / "registry.ollama.ai" / "library" / "tiny" / "latest"
    manifest.parent.mkdir(parents=True)
    layer = {"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{digest}"}
    manifest.write_text(json.dumps({"schemaVersion": 2, "layers": [layer]}))
    env = {**os.environ, "OLLAMA_MODELS": str(store), "HOME": str(tmp_path)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent.cli",
            "scan",
            "--no-processes",
            "--format",
            "json",
            str(store),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    (event,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert event["ai.model.store"] == "ollama"
    assert event["ai.model.name"] == "tiny:latest"
    assert event["file.hash.sha256"] == digest
