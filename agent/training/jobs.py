"""The programs the capture runs: inference runtimes serving and running real models, and
ordinary programs of many kinds, each with its label, family and how it is started.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Workload:
    """One program to run (or one already running, by process name) and how to label it.

    `command` and `load` are shell-split, then each word is formatted with the paths of
    `Setup.values()`; `load` runs during the busy samples, {port} being the port the program
    printed when ready. Busy samples under a load are refused unless the load ran throughout
    and the target's CPU rose (agent.training.load)."""

    program: str
    label: str
    family: str
    how: str
    command: str = ""
    running: tuple[str, ...] = ()  # process names of a service already running here
    load: str = ""
    load_name: str = ""  # how the rows name the load; its program's name by default
    init: str = ""  # a bash command run once before the load, e.g. creating its tables
    children: bool = False
    skip_root: bool = False
    idle: int = 2
    busy: int = 2
    ready: bool = True  # prints a line once ready; the others get a few seconds
    env: Mapping[str, str] = field(default_factory=dict)


def _inference(program: str, family: str, how: str, command: str, **options: Any) -> Workload:
    return Workload(program, "inference", family, how, command, **options)


def _ordinary(program: str, family: str, how: str, command: str, **options: Any) -> Workload:
    return Workload(program, "ordinary", family, how, command, **options)


def _loop(command: str, **options: Any) -> dict[str, Any]:
    """A short-lived program run again and again by a shell; the shell itself is left out."""
    loop = f"bash -c 'while true; do {command}; done'"
    return {"command": loop, "skip_root": True, "ready": False, **options}


GET: dict[str, Any] = {
    "load": "{py} -c 'import urllib.request as u\n"
    'while 1: u.urlopen("http://127.0.0.1:{port}/").read()\'',
    "load_name": "python urllib GET loop",
}
LLAMA = "node {llama_dir}/llama-serve.mjs {gguf}"
PG = "-h 127.0.0.1 -U postgres"
PGBENCH_DB = "shadowai_capture"  # not the tests' database: pgbench -i adds its tables
BUSY: dict[str, Any] = {"idle": 0, "busy": 4}
IDLE: dict[str, Any] = {"idle": 4, "busy": 0}

INFERENCE: tuple[Workload, ...] = (
    _inference(
        "ort-batch-scoring",
        "onnxruntime",
        "python script scoring batches in a loop",
        "{py} {scripts}/score_batches.py {onnx}",
        **BUSY,
    ),
    _inference(
        "ort-embedded-idle",
        "onnxruntime",
        "python app holding a loaded session, idle",
        "{py} {scripts}/embedded_model.py {onnx}",
        **IDLE,
    ),
    _inference(
        "ort-http-unusual-port",
        "onnxruntime",
        "python HTTP server on 0.0.0.0:18777",
        "{py} {scripts}/ort_http.py {onnx} 0.0.0.0 18777",
        **GET,
    ),
    _inference(
        "torchscript-loop",
        "pytorch",
        "python running a TorchScript model in a loop",
        "{py} {scripts}/run_torchscript.py {torchscript}",
        **BUSY,
    ),
    _inference(
        "torch-http-8000",
        "pytorch",
        "python HTTP server on 127.0.0.1:8000, nn.Module",
        "{py} {scripts}/torch_serve.py {state_dict} 127.0.0.1 8000",
        **GET,
    ),
    _inference(
        "transformers-generate",
        "transformers",
        "python generating with a local Llama",
        "{py} {scripts}/generate.py {hf}",
        **BUSY,
    ),
    _inference(
        "transformers-chat-7860",
        "transformers",
        "python HTTP chat server on :7860",
        "{py} {scripts}/chat_server.py {hf} 127.0.0.1 7860",
        **GET,
    ),
    _inference(
        "keras-predict",
        "keras",
        "python predicting with a .keras model, torch backend",
        "{py} {scripts}/keras_predict.py {keras}",
        env={"KERAS_BACKEND": "torch"},
        **BUSY,
    ),
    _inference(
        "node-llama-cpp-server",
        "llama.cpp",
        "node-llama-cpp on loopback, random port",
        f"{LLAMA} 127.0.0.1 0",
        **GET,
    ),
    _inference(
        "node-llama-cpp-8080",
        "llama.cpp",
        "node-llama-cpp on 0.0.0.0:8080",
        f"{LLAMA} 0.0.0.0 8080",
        **GET,
    ),
    _inference(
        "node-llama-cpp-generate",
        "llama.cpp",
        "node-llama-cpp generating, no server",
        f"{LLAMA} 127.0.0.1 0 loop",
        **BUSY,
    ),
    _inference(
        "node-llama-cpp-idle",
        "llama.cpp",
        "node-llama-cpp app holding a loaded model, idle, no server",
        f"{LLAMA} 127.0.0.1 0 idle",
        **IDLE,
    ),
    _inference(
        "torch-notebook-idle",
        "pytorch",
        "python holding a TorchScript model after one prediction, idle",
        "{py} {scripts}/notebook_kernel.py {torchscript}",
        **IDLE,
    ),
    _inference(
        "transformers-embeddings-5000",
        "transformers",
        "python embeddings HTTP server on 0.0.0.0:5000",
        "{py} {scripts}/embed_server.py {hf} 0.0.0.0 5000",
        **GET,
    ),
    _inference(
        "llama-renamed-binary",
        "llama.cpp",
        "node renamed svc-worker, app.mjs, GGUF renamed data/blob.dat, port 23456",
        "{renamed}/bin/svc-worker {renamed}/app/app.mjs {disguised} 127.0.0.1 23456",
        **GET,
    ),
)

ORDINARY: tuple[Workload, ...] = (
    Workload(
        "postgresql",
        "ordinary",
        "database",
        "system service, pgbench -S load on its own initialised database",
        running=("postgres",),
        children=True,
        init=f"createdb {PG} {PGBENCH_DB} 2>/dev/null; pgbench {PG} -i -q -s 5 {PGBENCH_DB}",
        load=f"pgbench {PG} -c 2 -j 1 -T 600 -S {PGBENCH_DB}",
    ),
    Workload(
        "mariadb",
        "ordinary",
        "database",
        "system service, mysqlslap mixed read/write load",
        running=("mariadbd",),
        load="mysqlslap -u root --concurrency=2 --iterations=1000 --number-of-queries=4000 "
        "--auto-generate-sql --auto-generate-sql-load-type=mixed",
    ),
    Workload(
        "redis",
        "ordinary",
        "database",
        "system service, redis-benchmark load",
        running=("redis-server",),
        load="redis-benchmark -q -l -t get,set,lpush,lpop -c 4",
    ),
    Workload(
        "rabbitmq",
        "ordinary",
        "message broker",
        "system service (Erlang VM), idle",
        running=("beam.smp", "epmd"),
        children=True,
        **IDLE,
    ),
    Workload(
        "nats",
        "ordinary",
        "message broker",
        "system service, a python client publishing in a loop",
        running=("nats-server",),
        load="{py} {scripts}/nats_publish.py",
        load_name="python NATS publisher",
    ),
    Workload(
        "mosquitto",
        "ordinary",
        "message broker",
        "system service, mosquitto_pub publishing lines in a loop",
        running=("mosquitto",),
        load="bash -c 'yes payload | mosquitto_pub -h 127.0.0.1 -t capture/load -l -q 0'",
        load_name="mosquitto_pub",
    ),
    _ordinary(
        "chromium-headless",
        "browser",
        "chromium --headless rendering a busy local page",
        "chromium --headless --no-sandbox --remote-debugging-port=0 "
        "--user-data-dir={work}/chromium-profile file://{work}/page.html",
        children=True,
        idle=3,
        busy=0,
        ready=False,
    ),
    _ordinary(
        "gcc-compile",
        "compiler",
        "gcc -O2 on a large C file, in a loop",
        **_loop("gcc -O2 -c {work}/big.c -o {work}/big.o", **BUSY),
    ),
    _ordinary(
        "g++-compile",
        "compiler",
        "g++ -O2 on template-heavy C++, in a loop",
        **_loop("g++ -O2 {work}/heavy.cpp -o {work}/heavy", **BUSY),
    ),
    _ordinary(
        "make-build",
        "build tool",
        "make over 24 C files, in a loop",
        **_loop("make -s -C {work}/make clean all", **BUSY),
    ),
    _ordinary(
        "cargo-build",
        "compiler",
        "cargo build --release of a crate of 800 functions, in a loop",
        **_loop(
            "touch {work}/crate/src/main.rs; cargo build -q --offline --release "
            "--manifest-path {work}/crate/Cargo.toml",
            **BUSY,
        ),
    ),
    _ordinary(
        "python-http-server-8000",
        "web server",
        "python -m http.server, 0.0.0.0:8000",
        "{py} -m http.server --bind 0.0.0.0 8000",
        **GET,
    ),
    _ordinary(
        "python-http-server",
        "web server",
        "python -m http.server on loopback",
        "{py} -m http.server --bind 127.0.0.1 0",
        **GET,
    ),
    _ordinary(
        "node-web-3000",
        "web server",
        "node http server on 0.0.0.0:3000",
        "node {scripts}/web.mjs 3000",
        **GET,
    ),
    _ordinary(
        "node-crunch", "script", "node computing primes", "node {scripts}/crunch.mjs", **BUSY
    ),
    _ordinary(
        "java-http-server",
        "web server",
        "java single-file HTTP server",
        "java {work}/Server.java",
        **GET,
    ),
    _ordinary(
        "pytest-run",
        "test runner",
        "pytest on a slow suite",
        "{py} -m pytest -q -p no:cacheprovider {scripts}/slow_tests.py",
        **BUSY,
        ready=False,
    ),
    _ordinary(
        "mypy-check",
        "type checker",
        "mypy over agent/detect, in a loop",
        **_loop("{venv}/mypy --no-incremental {repo}/agent/detect", **BUSY),
    ),
    _ordinary(
        "pylsp",
        "language server",
        "python-lsp-server on stdio, idle",
        '{py} -c \'import sys; sys.path.insert(0, "{pylsp}"); sys.argv = ["pylsp"]; '
        "from pylsp.__main__ import main; main()'",
        **IDLE,
        ready=False,
    ),
    _ordinary(
        "git-gc",
        "version control",
        "git gc --aggressive on a copy of the Python stdlib, in a loop",
        **_loop("git -C {work}/repo gc -q --aggressive --prune=now", **BUSY),
    ),
    _ordinary(
        "numpy-matrix-job",
        "numeric script",
        "numpy matrix products (OpenBLAS)",
        "{py} {scripts}/matrix_job.py",
        **BUSY,
    ),
    _ordinary(
        "sklearn-fit",
        "numeric script",
        "scikit-learn fitting random forests",
        "{py} {scripts}/sklearn_fit.py",
        **BUSY,
    ),
    _ordinary(
        "python-big-arrays",
        "numeric script",
        "python holding 1.5 GB of numpy arrays",
        "{py} {scripts}/big_arrays.py",
        **IDLE,
    ),
    _ordinary(
        "log-indexer-mmap",
        "script",
        "python mapping a 256 MB log file, scanning it",
        "{py} {scripts}/log_indexer.py {work}/data/app.log",
        **BUSY,
    ),
    _ordinary(
        "xz-compress",
        "archiver",
        "xz -9 compressing, in a loop",
        **_loop("xz -9 -T1 -c {work}/data/app.log > /dev/null", **BUSY),
    ),
    _ordinary(
        "sqlite-query",
        "database",
        "sqlite3 running a recursive query, in a loop",
        **_loop(
            'sqlite3 {work}/db.sqlite "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL '
            'SELECT x+1 FROM c WHERE x < 30000000) SELECT sum(x) FROM c;" > /dev/null',
            **BUSY,
        ),
    ),
    _ordinary("sleep", "shell", "sleep 3600", "sleep 3600", ready=False, **IDLE),
    _ordinary(
        "bash-loop",
        "shell",
        "bash running a while loop with sleeps",
        "bash -c 'while true; do sleep 1; done'",
        **IDLE,
        ready=False,
    ),
    _ordinary(
        "perl-text",
        "script",
        "perl substituting text in a loop",
        "perl -e '$s = \"x\" x 100000; while (1) {{ $s =~ s/x/y/g; $s =~ s/y/x/g; }}'",
        **BUSY,
        ready=False,
    ),
)
