"""Redact secrets and prompts from command lines and environment values before any event.

Pure: argv lists and strings in, the same with every secret replaced by `[REDACTED]` out.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence

REDACTED = "[REDACTED]"

# Option and variable names are split into words; a name is secret when one word, or two
# adjacent words joined, is in these sets. Whole words keep `--max-tokens 512` intact.
_SECRET_WORDS = frozenset(
    {
        "token",
        "password",
        "passwd",
        "pass",
        "secret",
        "credential",
        "credentials",
        "authorization",
        "bearer",
        "apikey",
        "accesskey",
        "secretkey",
        "privatekey",
        "authtoken",
        "accesstoken",
        "hftoken",
    }
)
_SECRET_PAIRS = frozenset(
    {"apikey", "accesskey", "secretkey", "privatekey", "authkey", "clientsecret"}
)
# Flags whose value is a prompt: the laptop's conversations never leave it either.
_PROMPT_FLAGS = frozenset({"--prompt", "--system-prompt", "--system-prompt-text"})
# Short flags that take a secret (or a prompt) only for these programs; elsewhere `-p` is a port.
_SHORT_FLAGS: dict[str, frozenset[str]] = {
    **dict.fromkeys(("mysql", "mysqldump", "mysqladmin", "mariadb", "sshpass"), frozenset({"-p"})),
    "redis-cli": frozenset({"-a"}),
    "curl": frozenset({"-u", "--user"}),
    **dict.fromkeys(
        ("llama-cli", "llama-run", "llama-simple", "llama-mtmd-cli", "llamafile", "main"),
        frozenset({"-p"}),
    ),
}

_TOKEN_PATTERNS = re.compile(
    r"(?<![A-Za-z0-9])(?:"
    r"sk-[A-Za-z0-9_-]{16,}"
    r"|hf_[A-Za-z0-9]{20,}"
    r"|gh[pousr]_[A-Za-z0-9]{20,}"
    r"|github_pat_[A-Za-z0-9_]{20,}"
    r"|glpat-[A-Za-z0-9_-]{20,}"
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"
    r"|AIza[0-9A-Za-z_-]{35}"
    r"|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"
    r")"
)
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]*:[^/\s]*@")
_AUTH_HEADER = re.compile(
    r"(?i)\b(authorization\s*[:=]\s*)(?:(?:bearer|basic|token|digest)\s+)?\S+"
)
_BEARER = re.compile(r"(?i)\b(bearer\s+)[^\s\"']+")
# `NAME=value` or `--name value` / `--name=value` inside free text such as `sh -c "..."`.
_INLINE_ASSIGN = re.compile(r"(?<![\w-])([A-Za-z_][\w.-]*)=(\"[^\"]*\"|'[^']*'|\S+)")
# Only options whose name holds a secret-like word may take a value here, so that `-c` in
# `sh -c '... --api-key X'` does not swallow the script before its options are seen.
_INLINE_FLAG = re.compile(
    r"(?i)(?<!\S)(--[\w.-]*(?:token|pass|secret|key|credential|auth|bearer|prompt)[\w.-]*)"
    r"([ \t]+|=)(\"[^\"]*\"|'[^']*'|[^\s-]\S*)"
)
_HEADER = re.compile(r"(?i)\b([\w-]*(?:api[-_]?key|token|secret|password)[\w-]*\s*:\s*)[^\s\"']+")


def _words(name: str) -> list[str]:
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name.lstrip("-"))
    return [w for w in re.split(r"[-_.\s]+", name.lower()) if w]


def secret_name(name: str) -> bool:
    """True for option or variable names that carry a secret: `--api-key`, `HF_TOKEN`."""
    words = _words(name)
    if any(word in _SECRET_WORDS for word in words):
        return True
    return any(a + b in _SECRET_PAIRS for a, b in itertools.pairwise(words))


def redact_text(text: str) -> str:
    """Known token shapes, credentials in URLs, auth headers and secret assignments in text."""
    text = _URL_CREDENTIALS.sub(rf"\1{REDACTED}@", text)
    text = _AUTH_HEADER.sub(rf"\1{REDACTED}", text)
    text = _BEARER.sub(rf"\1{REDACTED}", text)
    text = _HEADER.sub(rf"\1{REDACTED}", text)
    text = _INLINE_ASSIGN.sub(_assignment, text)
    text = _INLINE_FLAG.sub(_inline_flag, text)
    return _TOKEN_PATTERNS.sub(REDACTED, text)


def _assignment(match: re.Match[str]) -> str:
    name = match.group(1)
    return f"{name}={REDACTED}" if secret_name(name) else match.group(0)


def _inline_flag(match: re.Match[str]) -> str:
    flag, sep = match.group(1), match.group(2)
    if flag.startswith("--") and (secret_name(flag) or flag in _PROMPT_FLAGS):
        return f"{flag}{sep}{REDACTED}"
    return match.group(0)


def _program(argv: Sequence[str]) -> str:
    if not argv:
        return ""
    base = re.split(r"[\\/]", argv[0])[-1].lower()
    return base.removesuffix(".exe")


def _takes_secret(arg: str, short: frozenset[str]) -> bool:
    if arg in short:
        return True
    return arg.startswith("--") and (secret_name(arg) or arg in _PROMPT_FLAGS)


def redact_argv(argv: Sequence[str]) -> list[str]:
    """The argument list with secret and prompt values replaced, everything else kept."""
    short = _SHORT_FLAGS.get(_program(argv), frozenset())
    out: list[str] = []
    pending = False
    for arg in argv:
        if pending and not arg.startswith("--"):
            out.append(REDACTED)
            pending = False
            continue
        pending = False
        if _takes_secret(arg, short):
            out.append(arg)
            pending = True
            continue
        out.append(_redact_arg(arg, short))
    return _redact_positional_prompt(argv, out)


def _redact_arg(arg: str, short: frozenset[str]) -> str:
    if arg.startswith("--") and "=" in arg:
        flag, _, value = arg.partition("=")
        if secret_name(flag) or flag in _PROMPT_FLAGS:
            return f"{flag}={REDACTED}"
        return f"{flag}={redact_text(value)}"
    for flag in short:
        # mysql -pSECRET: the value glued to the short flag.
        if arg.startswith(flag) and len(arg) > len(flag) and not arg.startswith("--"):
            return flag + REDACTED
    return redact_text(arg)


def _redact_positional_prompt(argv: Sequence[str], out: list[str]) -> list[str]:
    # `ollama run MODEL PROMPT...`: everything after the model name is the prompt.
    if _program(argv) != "ollama" or "run" not in out[1:2]:
        return out
    positional = [i for i, arg in enumerate(out) if i >= 2 and not arg.startswith("-")]
    for index in positional[1:]:
        out[index] = REDACTED
    return out


def redact_command_line(argv: Sequence[str], *, limit: int = 4096) -> str:
    """`process.command_line`: the redacted arguments joined by spaces, cut at `limit` chars."""
    line = " ".join(redact_argv(argv))
    return line if len(line) <= limit else line[: limit - 3] + "..."


def redact_env(env: Mapping[str, str]) -> dict[str, str]:
    """Environment values: secret-named variables wholly, the rest through redact_text."""
    return {
        name: REDACTED if secret_name(name) else redact_text(value) for name, value in env.items()
    }
