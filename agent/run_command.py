"""`shadowai-agent run` and `status`: the configuration first, then the supervisor or the
worker it runs, and what a running daemon last said about itself."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from agent import __version__, platform, users
from agent.config import Settings, load_config, resolve_roots
from agent.errors import AgentError
from agent.sensors import priority
from agent.state import STATUS_FILE, pid_alive, read_status, summary
from agent.watchdog.policy import Limits
from agent.watchdog.quarantine import QUARANTINE_FILE, load_quarantine
from agent.watchdog.supervisor import Supervisor

STALE = 30.0  # seconds without a heartbeat after which a daemon is taken for dead


def data_dir(args: argparse.Namespace) -> Path:
    path: Path = getattr(args, "data_dir", None) or platform.current().data_dir()
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def config_path(args: argparse.Namespace) -> tuple[Path, bool]:
    """The file to read, and whether it may be missing (only the conventional place may)."""
    given: Path | None = getattr(args, "config", None)
    if given is not None:
        return given, False
    return platform.current().config_path(), True


def load_settings(args: argparse.Namespace) -> Settings:
    path, missing_ok = config_path(args)
    return load_config(path, missing_ok=missing_ok)


def run_settings(args: argparse.Namespace) -> Settings:
    """The config file, then the command line on top of it, then the roots resolved."""
    settings = load_settings(args)
    changes: dict[str, Any] = {}
    if args.path:
        changes.update(roots=tuple(args.path), include_default_roots=args.default_paths)
    if args.exclude:
        changes["excludes"] = (*settings.excludes, *args.exclude)
    if args.interval is not None:
        changes["interval"] = args.interval
    plat = platform.current()
    settings = replace(settings, **changes)
    defaults, watched = default_roots(settings, plat)
    roots = resolve_roots(settings, defaults)
    if not settings.roots or settings.include_default_roots:
        watched = [*settings.roots, *watched]
    else:
        watched = list(roots)
    excludes = (*settings.excludes, *plat.default_excludes())
    return replace(
        settings,
        roots=roots,
        watch_roots=tuple(dict.fromkeys(watched)),
        excludes=tuple(dict.fromkeys(excludes)),
    )


def default_roots(settings: Settings, plat: platform.Platform) -> tuple[list[Path], list[Path]]:
    """The roots to scan and the roots to watch when none are configured: every local
    user's home and stores when the agent may read them, else this user's stores.

    Whole home folders are scanned on the interval but not watched: a watch per directory
    of every home would cost the kernel far more memory than the agent itself.
    """
    if settings.users and users.privileged():
        people = users.local_users(plat)
        roots = users.service_roots(plat, people, homes=settings.homes, exists=Path.exists)
        stores = users.service_roots(plat, people, homes=False, exists=Path.exists)
        return roots, stores
    return plat.model_roots(), plat.model_roots()


def cmd_run(args: argparse.Namespace, out: TextIO) -> int:
    settings = run_settings(args)  # a config error is reported before anything else
    folder = data_dir(args)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if settings.watchdog and not args.once and not args.worker:
        # The supervisor imports none of the worker's modules: it stays small.
        return supervise(args, settings, folder, stop)
    from agent.worker import run_worker

    return run_worker(args, settings, folder, stop, out)


def supervise(
    args: argparse.Namespace, settings: Settings, folder: Path, stop: threading.Event
) -> int:
    """Run this same command as a worker process under the watchdog."""
    priority.lower_current_thread(priority.for_os(platform.current().os_type))
    command = [sys.executable, "-m", "agent.cli", "--data-dir", str(folder)]
    command += [*args.argv, "--worker"]
    limits = Limits(
        cpu_share=settings.watchdog_cpu_share,
        window=settings.watchdog_window,
        memory_bytes=settings.watchdog_memory_bytes,
        quarantine_seconds=settings.quarantine_seconds,
    )
    return Supervisor(command=command, limits=limits, data_dir=folder, stop=stop).run()


def cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    folder = data_dir(args)
    status: dict[str, Any] = {"data_dir": str(folder), "version": __version__}
    from agent.delivery_cli import delivery_status
    from agent.identity import load_enrollment
    from agent.spool import Spool

    try:
        enrollment = load_enrollment(folder)
        status.update(
            enrolled=True,
            agent_id=enrollment.agent_id,
            collector=enrollment.collector,
            group=enrollment.group,
        )
    except AgentError:
        status["enrolled"] = False
    daemon = read_status(folder / STATUS_FILE)
    status["service"] = dict(summary(daemon, now=time.time(), alive=pid_alive, stale=STALE))
    quarantine = load_quarantine(folder / QUARANTINE_FILE)
    status["quarantined"] = quarantine.active(time.time())
    status["watchdog_restarts"] = quarantine.restarts
    if (folder / "spool.db").exists():
        spool = Spool.open(folder / "spool.db")
        stats = spool.stats()
        status.update(delivery_status(spool))  # revoked, refused envelopes, spool level
        spool.close()
        status.update(
            spool_pending=stats.pending,
            spool_bytes=stats.pending_bytes,
            last_seq=stats.last_seq,
            acked_seq=stats.acked_seq,
            dropped_total=stats.dropped_total,
        )
    out.write(json.dumps(status, indent=2) + "\n")
    return 0
