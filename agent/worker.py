"""The worker of `run`: open the spool and the channel, build the daemon, run it until
stopped (or one pass with `--once`), and say how much was acked."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

from agent import platform
from agent.config import Settings
from agent.daemon import build, lower_this_thread
from agent.delivery_cli import client_tls, ship_exit_status
from agent.identity import load_enrollment, load_or_create_key
from agent.pipeline import HostFacts
from agent.scan_command import process_sensor
from agent.sensors.gpu import default_source as gpu_source
from agent.shipper import Shipper, drain, open_channel
from agent.spoolfile import open_spool


def run_worker(
    args: argparse.Namespace, settings: Settings, folder: Path, stop: threading.Event, out: TextIO
) -> int:
    enrollment = load_enrollment(folder)  # exits 2 under the watchdog: not restarted
    # Threads inherit the creator's nice value and IO class: lowering the main thread
    # before any other starts puts gRPC's own threads at the lowest priority too.
    lower_this_thread()
    # `run --once` is bounded, whatever the collector does.
    ship_deadline = (
        time.monotonic() + (300.0 if args.timeout is None else args.timeout) if args.once else None
    )
    key = load_or_create_key(folder)
    # A corrupt spool is moved aside and a fresh one resyncs with the collector.
    spool = open_spool(folder / "spool.db", max_bytes=settings.spool_max_bytes)
    ca = enrollment.ca_pem.encode() if enrollment.ca_pem else None
    channel = open_channel(
        enrollment.publish_to or enrollment.collector, ca, client_tls(folder, enrollment)
    )
    shipper = Shipper(channel)
    os_type = platform.current().os_type
    daemon = build(
        settings=settings,
        host=HostFacts(enrollment.agent_id, enrollment.host_name, os_type, enrollment.group),
        key=key,
        spool=spool,
        data_dir=folder,
        stop=stop,
        process_sensor=process_sensor(os_type) if settings.processes else None,
        gpu=gpu_source(os_type) if settings.processes else None,
    )

    if daemon.board is not None:
        daemon.board.status.watchdog = args.worker  # supervised by `run`'s watchdog

    def deliver() -> bool:
        return drain(
            spool,
            shipper,
            stop=stop,
            stats=daemon.ship_stats,
            sync=daemon.resync,
            deadline=ship_deadline if args.once else None,
        )

    try:
        # False: not acked (--once), or a thread failed; exit 1 so a fresh worker starts.
        shipped = daemon.once(deliver) if args.once else daemon.run(deliver)
    finally:
        stop.set()
        daemon.close()
        shipper.close()
        spool.close()
    stats = daemon.ship_stats
    out.write(f"acked {stats.acked} events; {stats.failures} failed attempts\n")
    return 0 if shipped else ship_exit_status(stats, sys.stderr)
