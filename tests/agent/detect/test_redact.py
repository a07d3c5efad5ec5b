"""Secrets and prompts never leave in a command line or an environment value."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.detect.redact import (
    REDACTED,
    redact_argv,
    redact_command_line,
    redact_env,
    redact_text,
    secret_name,
)

OPENAI = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0K1l2"
HF = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWx"
GITHUB = "ghp_" + "0123456789abcdefghijABCDEFGHIJ"
SLACK = "xoxb-" + "123456789012-abcdefABCDEF"
AWS = "AKIA" + "IOSFODNN7EXAMPLE"


@pytest.mark.parametrize("token", [OPENAI, HF, GITHUB, SLACK, AWS])
def test_known_token_shapes_anywhere_in_an_argument(token: str) -> None:
    out = redact_argv(["tool", f"--header=x-key:{token}", f"prefix{'/'}{token}", token])

    assert token not in " ".join(out)
    assert out[0] == "tool"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["vllm", "serve", "m", "--api-key", "s3cret"],
            ["vllm", "serve", "m", "--api-key", REDACTED],
        ),
        (
            ["llama-server", "--api-key=s3cret", "--port", "8080"],
            ["llama-server", f"--api-key={REDACTED}", "--port", "8080"],
        ),
        (
            ["app", "--token", "abc", "--password", "pw"],
            ["app", "--token", REDACTED, "--password", REDACTED],
        ),
        (["app", "--hf-token", "abc"], ["app", "--hf-token", REDACTED]),
        (["app", "--client-secret=abc"], ["app", f"--client-secret={REDACTED}"]),
        (["mysql", "-u", "root", "-pS3cret"], ["mysql", "-u", "root", f"-p{REDACTED}"]),
        (["mysql", "-p", "S3cret", "db"], ["mysql", "-p", REDACTED, "db"]),
        (["redis-cli", "-a", "S3cret"], ["redis-cli", "-a", REDACTED]),
        (
            ["env", "HF_TOKEN=abc", "OPENAI_API_KEY=def", "PATH=/bin"],
            ["env", f"HF_TOKEN={REDACTED}", f"OPENAI_API_KEY={REDACTED}", "PATH=/bin"],
        ),
        (
            ["env", "DB_PASSWORD=x", "AWS_SECRET_ACCESS_KEY=y"],
            ["env", f"DB_PASSWORD={REDACTED}", f"AWS_SECRET_ACCESS_KEY={REDACTED}"],
        ),
    ],
)
def test_secret_options_and_assignments(argv: list[str], expected: list[str]) -> None:
    assert redact_argv(argv) == expected


@pytest.mark.parametrize(
    "argv",
    [
        ["vllm", "serve", "Qwen/Qwen3-0.6B", "--max-num-batched-tokens", "8192", "--port", "8000"],
        ["llama-server", "-m", "/models/a.gguf", "-p", "8080"],  # -p is no password here
        ["python", "-m", "http.server", "--bind", "0.0.0.0"],
        ["ollama", "serve"],
        ["postgres", "-D", "/var/lib/postgresql/15/main", "-c", "config_file=/etc/pg.conf"],
    ],
)
def test_ordinary_command_lines_are_kept_whole(argv: list[str]) -> None:
    assert redact_argv(argv) == argv


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer abc.def-ghi", "abc.def-ghi"),
        ("authorization=Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
        ("curl -H 'Authorization: Token t0k3nvalue' host", "t0k3nvalue"),
        ("Bearer eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl", "eyJhbGciOi"),
        ("X-Api-Key: k3yvalue", "k3yvalue"),
        ("https://user:hunter2@example.com/repo.git", "hunter2"),
        ("postgresql://app:pa55word@db:5432/app", "pa55word"),
        ("sh -c 'llama-server --api-key s3cr3t --port 8080'", "s3cr3t"),
        ("HF_TOKEN=abcdef python x.py", "abcdef"),
    ],
)
def test_headers_urls_and_shell_strings(text: str, secret: str) -> None:
    out = redact_text(text)

    assert secret not in out and REDACTED in out


def test_urls_keep_host_and_path() -> None:
    assert redact_text("https://u:p@example.com/a") == f"https://{REDACTED}@example.com/a"
    assert redact_text("https://example.com:8443/a@b") == "https://example.com:8443/a@b"


def test_prompts_are_private_too() -> None:
    assert redact_argv(["llama-cli", "-m", "m.gguf", "-p", "my diary"])[-1] == REDACTED
    assert redact_argv(["app", "--prompt", "my diary"])[-1] == REDACTED
    assert redact_argv(["ollama", "run", "llama3", "tell", "me"]) == [
        "ollama",
        "run",
        "llama3",
        REDACTED,
        REDACTED,
    ]


def test_command_line_is_joined_and_bounded() -> None:
    line = redact_command_line(["a", "--token", "x", "b" * 10_000], limit=100)

    assert line.startswith(f"a --token {REDACTED} b") and len(line) == 100


def test_environment_values() -> None:
    env = {"OLLAMA_HOST": "0.0.0.0", "HF_TOKEN": "abc", "PROXY": "http://u:p@proxy:3128"}

    assert redact_env(env) == {
        "OLLAMA_HOST": "0.0.0.0",
        "HF_TOKEN": REDACTED,
        "PROXY": f"http://{REDACTED}@proxy:3128",
    }


@pytest.mark.parametrize(
    "name",
    [
        "--api-key",
        "apiKey",
        "OPENAI_API_KEY",
        "HF_TOKEN",
        "--passwd",
        "PRIVATE_KEY",
        "x-access-key",
    ],
)
def test_secret_names(name: str) -> None:
    assert secret_name(name)


@pytest.mark.parametrize(
    "name", ["--max-tokens", "--tokenizer", "--port", "PATH", "--key-file-dir", "OLLAMA_HOST"]
)
def test_ordinary_names(name: str) -> None:
    assert not secret_name(name)


# -- a secret in any of the forms, anywhere in a random command line, never survives --------

filler_word = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789./:_", min_size=1, max_size=12)
filler = st.lists(
    filler_word | st.sampled_from(["-v", "--port", "8080", "-m", "--host"]), max_size=8
)
# Secret bodies use capitals, which the filler never has: any survival is the secret itself.
body = st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ", min_size=20, max_size=32)


def forms(secret: str) -> st.SearchStrategy[list[str]]:
    flag = st.sampled_from(["--api-key", "--token", "--password", "--access-token", "--hf-token"])
    key = st.sampled_from(
        ["HF_TOKEN", "OPENAI_API_KEY", "DB_PASSWORD", "AWS_SECRET_ACCESS_KEY", "PRIVATE_KEY"]
    )
    return st.one_of(
        flag.map(lambda f: [f, secret]),
        flag.map(lambda f: [f"{f}={secret}"]),
        key.map(lambda k: [f"{k}={secret}"]),
        st.just(["-H", f"Authorization: Bearer {secret}"]),
        st.just([f"https://user:{secret}@host.example/path"]),
        st.just([f"sk-{secret}"]),
        st.just([f"hf_{secret}"]),
        st.just([f"ghp_{secret}"]),
        st.just([f"xoxb-{secret}"]),
        st.just([f"AKIA{secret[:16].ljust(16, 'A')}"]),
        flag.map(lambda f: ["sh", "-c", f"server {f} {secret} --port 1"]),
    )


@given(st.data(), filler, filler, body)
def test_an_inserted_secret_never_survives(
    data: st.DataObject, before: list[str], after: list[str], secret: str
) -> None:
    form = data.draw(forms(secret))
    program = data.draw(st.sampled_from(["python", "llama-server", "vllm", "node", "ollama"]))
    argv = [program, *before, *form, *after]
    out = redact_command_line(argv, limit=1 << 20)
    survivor = form[-1].split("AKIA")[-1] if form[0].startswith("AKIA") else secret

    assert survivor not in out


@given(st.lists(st.text(max_size=30), max_size=10))
def test_any_argv_is_redacted_without_error(argv: list[str]) -> None:
    out = redact_argv(argv)
    assert len(out) == len(argv)
