"""The scaling bench against real `serve` processes on PostgreSQL: every event stored once."""

from __future__ import annotations

import socket

from bench import fleet_scaling


def _free_ports(count: int) -> int:
    """A first port with `count` free ports from it (serve takes gRPC, mTLS and HTTP)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = int(probe.getsockname()[1])
        if first + count > 65535:
            continue
        taken = []
        try:
            for port in range(first, first + count):
                sock = socket.socket()
                taken.append(sock)
                sock.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for sock in taken:
                sock.close()
    raise AssertionError("no run of free ports")


def test_two_processes_on_one_port_store_every_presigned_event_once() -> None:
    result = fleet_scaling.one(processes=2, agents=4, batch=25, seed=3, port=_free_ports(4))
    assert result["lost"] == 0 and result["duplicates"] == 0
    assert result["events"] == result["stored"] > 4 * 3
    assert result["rpcs"] >= result["events"] // 25
    assert result["collector_cpu_s"] > 0 and result["verify_per_s_one_core"] > 0
