"""`shadowai-collector db upgrade|current`, and a database that cannot be reached."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from collector.cli import EX_UNAVAILABLE, main
from collector.store import migrate


def test_db_current_then_upgrade_then_current(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = ["--data-dir", str(tmp_path)]
    assert main(["db", "current", *data]) == 0
    assert capsys.readouterr().out.startswith("no revision")
    assert main(["db", "upgrade", *data]) == 0
    assert capsys.readouterr().out.strip() == f"upgraded empty -> {migrate.head()}"
    assert main(["db", "upgrade", *data]) == 0
    assert capsys.readouterr().out.strip() == f"at revision {migrate.head()}"
    assert main(["db", "current", *data]) == 0
    assert capsys.readouterr().out.strip() == f"{migrate.head()} (newest)"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once the socket is closed


def _collector(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.run(
        [sys.executable, "-m", "collector.cli", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_serve_without_its_postgresql_says_so_in_one_line(tmp_path: Path) -> None:
    port = _closed_port()
    url = f"postgresql+psycopg://postgres:hunter2@127.0.0.1:{port}/test"
    done = _collector(
        "serve", "--unsafe-plaintext-grpc", "--database", url, "--grpc", "127.0.0.1:0",
        "--http", "127.0.0.1:0", data_dir=tmp_path,
    )  # fmt: skip
    assert done.returncode == EX_UNAVAILABLE == 69
    shown = url.replace("hunter2", "***")
    assert done.stderr.splitlines() == [
        f"shadowai-collector: cannot reach the database at {shown}: connection failed: "
        f'connection to server at "127.0.0.1", port {port} failed: Connection refused'
    ]
    assert "hunter2" not in done.stderr + done.stdout


def test_an_sqlite_file_that_cannot_be_created_says_so_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    url = f"sqlite:///{tmp_path / 'a-file' / 'collector.db'}"
    done = _collector("db", "upgrade", "--database", url, data_dir=tmp_path)
    assert done.returncode == EX_UNAVAILABLE
    assert done.stderr.splitlines() == [
        f"shadowai-collector: cannot reach the database at {url}: unable to open database file"
    ]
