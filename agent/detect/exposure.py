"""Who can reach an inference server: its listening addresses and the settings that widen them.

Pure: addresses, command lines, environment values and a parsed LM Studio server config in,
an Exposure out.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Exposure:
    """The listener reported (the most exposed one), and why the server is reachable wider."""

    address: str | None = None
    port: int | None = None
    exposed: bool | None = None  # None when the process listens nowhere
    reasons: tuple[str, ...] = ()


def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = address.strip().strip("[]").split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def is_loopback(address: str) -> bool:
    """127.0.0.0/8, ::1 (also IPv4-mapped) and `localhost`; anything unparsable is not."""
    if address.strip().lower() == "localhost":
        return True
    ip = _ip(address)
    return ip is not None and ip.is_loopback


def exposed(address: str) -> bool:
    """A listener bound to anything but loopback is reachable from elsewhere (fails closed)."""
    return not is_loopback(address)


def probe_host(address: str) -> str | None:
    """The loopback address that reaches a listener, or None when only another address would.

    A wildcard bind (0.0.0.0, ::) also answers on loopback; a bind to one LAN address does not,
    and the probe never leaves the machine, so that listener is not probed.
    """
    ip = _ip(address)
    if ip is None:
        return "127.0.0.1" if address.strip().lower() == "localhost" else None
    if ip.is_loopback:
        return str(ip)
    if ip.is_unspecified:
        return "::1" if ip.version == 6 else "127.0.0.1"
    return None


def pick_listener(listeners: Sequence[tuple[str, int]]) -> tuple[str, int] | None:
    """The listener an event names: an exposed one first, then the lowest port."""
    if not listeners:
        return None
    return min(listeners, key=lambda item: (not exposed(item[0]), item[1], item[0]))


def ollama_host_exposed(value: str) -> bool:
    """Whether OLLAMA_HOST makes `ollama serve` bind beyond loopback (envconfig.Host's rules)."""
    text = value.strip().strip("\"'")
    if not text:
        return False
    hostport = text.split("://", 1)[1] if "://" in text else text
    hostport = hostport.split("/", 1)[0]
    if hostport.startswith("["):
        host = hostport[1:].split("]", 1)[0]
    elif hostport.count(":") == 1:
        host = hostport.split(":", 1)[0]
    else:
        host = hostport
    # An empty host with a port (":11434") binds every interface.
    return host == "" or exposed(host)


def _origins_widened(value: str) -> bool:
    local = ("localhost", "127.0.0.1", "0.0.0.0", "[::1]", "app://", "file://", "tauri://")
    for origin in (item.strip() for item in value.split(",")):
        if not origin:
            continue
        if origin == "*" or not any(token in origin for token in local):
            return True
    return False


def _option(cmdline: Sequence[str], name: str) -> str | None:
    for index, arg in enumerate(cmdline):
        if arg == name and index + 1 < len(cmdline):
            return cmdline[index + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def widening_settings(
    runtime: str,
    cmdline: Sequence[str],
    env: Mapping[str, str],
    lmstudio_config: Mapping[str, object] | None = None,
) -> tuple[str, ...]:
    """Settings that make a server reachable beyond this machine or from any web page."""
    reasons: list[str] = []
    if runtime == "ollama":
        host = env.get("OLLAMA_HOST")
        if host is not None and ollama_host_exposed(host):
            reasons.append(f"OLLAMA_HOST={host} binds beyond loopback")
        origins = env.get("OLLAMA_ORIGINS")
        if origins and _origins_widened(origins):
            reasons.append(f"OLLAMA_ORIGINS={origins} lets other web origins call the API")
    host = _option(cmdline, "--host")
    if runtime == "vllm" and (host is None or host in ("", "0.0.0.0", "::")):
        reasons.append("vLLM binds all interfaces unless --host is given")
    host = host if host is not None else env.get("LLAMA_ARG_HOST")
    if runtime != "vllm" and host and exposed(host):
        reasons.append(f"--host {host} binds beyond loopback")
    if runtime == "lmstudio" and lmstudio_config is not None:
        reasons += _lmstudio_reasons(lmstudio_config)
    return tuple(reasons)


def _lmstudio_reasons(config: Mapping[str, object]) -> list[str]:
    reasons = []
    interface = config.get("networkInterface")
    if isinstance(interface, str) and interface and exposed(interface):
        reasons.append(f"LM Studio server networkInterface={interface} serves the local network")
    if config.get("cors") is True:
        reasons.append("LM Studio server allows cross-origin requests (cors)")
    return reasons


def assess(
    runtime: str,
    listeners: Sequence[tuple[str, int]],
    cmdline: Sequence[str],
    env: Mapping[str, str],
    lmstudio_config: Mapping[str, object] | None = None,
) -> Exposure:
    """The listener to report, whether it is exposed, and the settings that widen exposure."""
    reasons = widening_settings(runtime, cmdline, env, lmstudio_config)
    chosen = pick_listener(listeners)
    if chosen is None:
        return Exposure(reasons=reasons)
    address, port = chosen
    return Exposure(address=address, port=port, exposed=exposed(address), reasons=reasons)
