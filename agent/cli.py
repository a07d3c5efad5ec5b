"""`shadowai-agent`: scan, enroll, run and status; main(argv) -> int, the only exit point."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from agent import __version__, platform
from agent.catalog import catalog_models, model_fields, safe_stores
from agent.config import Settings, load_config, resolve_roots
from agent.daemon import Daemon, HostFacts
from agent.delivery_cli import (
    adopt_position,
    client_csr,
    client_tls,
    delivery_status,
    mtls_target,
    save_client_cert,
    ship_exit_status,
)
from agent.detect.model import FileObservation
from agent.errors import AgentError, FormatError
from agent.identity import (
    Enrollment,
    agent_id,
    load_enrollment,
    load_or_create_key,
    save_enrollment,
)
from agent.pinning import fetch_pinned_ca, pick_ca
from agent.report import ScanProgress, printable, render_processes, render_table
from agent.sensors.files import ScanStats, iter_files, observe_file, sha256_file
from agent.sensors.gpu import default_source as gpu_source
from agent.sensors.processes import ProcessSensor
from agent.shipper import Shipper, open_channel
from agent.spool import Spool
from agent.spoolfile import open_spool
from wire import tokens
from wire.envelope import raw_public_key
from wire.v1 import collector_pb2

log = logging.getLogger("shadowai.agent")


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand's copy must not overwrite a value given before the subcommand.
    common.add_argument(
        "--data-dir", type=Path, default=argparse.SUPPRESS, help="identity, spool and caches"
    )
    parser = argparse.ArgumentParser(prog="shadowai-agent", parents=[common])
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)

    scan_p = sub.add_parser(
        "scan",
        parents=[common],
        help="one-shot local inventory",
        description="Find the model files under PATH (default: this OS's model stores) and "
        "print what they are. Nothing is sent anywhere.",
        epilog="Exit status: 0 when the scan ran, whatever it found (unsafe models are marked "
        "'!' in the table and carry ai.model.unsafe, they do not change the status); 2 when it "
        "could not run, e.g. a PATH that does not exist. Unreadable files are counted and "
        "reported on stderr.",
    )
    scan_p.add_argument("paths", nargs="*", type=Path, help="default: this OS's model stores")
    scan_p.add_argument(
        "--format",
        choices=["table", "json", "cyclonedx"],
        default="table",
        help="table (default), json (one flat event per line) or cyclonedx (a CycloneDX 1.6 "
        "ML-BOM)",
    )
    scan_p.add_argument("--exclude", action="append", default=[], help="glob of paths to skip")
    scan_p.add_argument("--no-processes", action="store_true", help="files only")
    scan_p.add_argument("--no-hash", action="store_true", help="skip the full SHA-256")

    enroll = sub.add_parser("enroll", parents=[common], help="bind this agent to a collector")
    enroll.add_argument("--collector", required=True, help="HOST:PORT of the collector's gRPC")
    enroll.add_argument("--token", required=True)
    enroll.add_argument("--ca", type=Path, help="CA file (default: fetched and pinned by token)")
    enroll.add_argument(
        "--unsafe-plaintext",
        action="store_true",
        help="no TLS (only for a collector started with --unsafe-plaintext-grpc)",
    )

    run = sub.add_parser("run", parents=[common], help="the daemon")
    run.add_argument("--path", action="append", type=Path, default=[], help="root to watch")
    run.add_argument(
        "--default-paths",
        action="store_true",
        help="also watch this OS's model stores when --path is given",
    )
    run.add_argument("--exclude", action="append", default=[], help="glob of paths to skip")
    run.add_argument("--once", action="store_true", help="one pass, shipped and acked, then exit")
    run.add_argument(
        "--interval", type=float, default=None, help="seconds between passes (config: 300)"
    )
    run.add_argument(
        "--config", type=Path, default=None, help="agent.toml (default: DATA_DIR/agent.toml)"
    )
    run.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="with --once: give up waiting for acks after this many seconds (default 300; "
        "exit status 75 when given up, 3 when the collector revoked this agent)",
    )

    sub.add_parser("status", parents=[common], help="enrollment and spool as JSON")
    return parser


def _data_dir(args: argparse.Namespace) -> Path:
    path: Path = getattr(args, "data_dir", None) or platform.current().data_dir()
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def _split(target: str) -> tuple[str, int]:
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise AgentError(f"--collector {target!r}: expected HOST:PORT")
    return host.strip("[]"), int(port)


def _cmd_scan(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    plat = platform.current()
    roots = _scan_roots(args.paths, plat)
    stats = ScanStats()
    progress = ScanProgress(err, columns=_columns()) if err.isatty() else None
    rows = _scan_rows(
        roots, excludes=args.exclude, hash_contents=not args.no_hash, stats=stats, progress=progress
    )
    now = datetime.now(UTC)
    common = {
        "event.dataset": "shadowai.model_file",
        "event.action": "snapshot",
        "@timestamp": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "agent.version": __version__,
        "host.name": platform.host_name(),
        "host.os.type": plat.os_type,
    }
    events = [{**common, **fields} for fields in rows]
    processes = [] if args.no_processes else _scan_processes(plat.os_type)
    if args.format == "json":
        for event in [*events, *({**common, **fields} for fields in processes)]:
            out.write(json.dumps(event, sort_keys=True) + "\n")
    elif args.format == "cyclonedx":
        from agent.bom import build_bom  # only this format needs cyclonedx-python-lib

        out.write(
            build_bom(events, tool_version=__version__, now=now, host_name=platform.host_name())
        )
    else:
        width = _columns() if out.isatty() else None
        out.write(render_table(rows, width=width))
        if processes:
            out.write("\n" + render_processes(processes, width=width))
    for problem in stats.errors:
        err.write(f"warning: {printable(problem)}\n")
    if stats.error_count > len(stats.errors):
        err.write(f"warning: {stats.error_count - len(stats.errors)} more problems not shown\n")
    if stats.permission_errors:
        err.write(f"warning: {stats.permission_errors} paths could not be read (permission)\n")
    return 0


def _scan_processes(os_type: str) -> list[dict[str, object]]:
    """Every inference process running now, as inference_process fields (one scan)."""
    sensor = _process_sensor(os_type)
    return [dict(fields) for _, fields in sensor.poll(snapshot=True)]


def _process_sensor(os_type: str) -> ProcessSensor:
    """This OS's process sensor, scoring every process with the shipped classifier."""
    try:
        from agent.classifier import Classifier, ProcessScorer

        scorer = ProcessScorer(Classifier.shipped())
    except (AgentError, ImportError) as exc:
        # Without the classifier, known runtimes are still found by their rules.
        log.warning("process classifier unavailable: %s", exc)
        return ProcessSensor.for_os(os_type)
    return ProcessSensor.for_os(os_type, scorer=scorer)


def _scan_roots(paths: Sequence[Path], plat: platform.Platform) -> list[Path]:
    """The paths asked for, each of which must exist; else this OS's model stores that do."""
    if not paths:
        return [p for p in plat.model_roots() if p.exists()]
    missing = [str(p) for p in paths if not os.path.lexists(p)]
    if missing:
        raise AgentError(f"{', '.join(missing)}: no such file or directory")
    return list(paths)


def _scan_rows(
    roots: Sequence[Path],
    *,
    excludes: Sequence[str],
    hash_contents: bool,
    stats: ScanStats,
    progress: ScanProgress | None,
) -> list[dict[str, object]]:
    """The model_file fields of every model under the roots, in path order.

    Files are walked here, not through agent.sensors.files.scan, so that the progress bar
    moves on every file rather than only when a model turns up; naming, grouping and fields
    are the daemon's (agent.catalog).
    """
    stores = safe_stores()
    observations = []
    for path, st in iter_files(roots, excludes=excludes, stats=stats):
        if progress:
            progress.update(stats, 0, str(path))
        obs = _observe(path, st, stats)
        if obs is not None:
            stats.models_found += 1
            observations.append(
                replace(obs, path=os.path.normpath(stores.canonical_path(obs.path)))
            )
    rows = []
    hashed = 0
    for model in catalog_models(observations):
        digest = None
        if hash_contents and not model.members:
            if progress:
                progress.update(stats, hashed, model.path)
            digest = _hash(model.primary.path, stats)
            hashed += model.primary.size
        rows.append(model_fields(model, digest, stores))
    if progress:
        progress.done()
    rows.sort(key=lambda f: str(f.get("file.path")))
    return rows


def _observe(path: Path, st: os.stat_result, stats: ScanStats) -> FileObservation | None:
    try:
        return observe_file(path, st, hash_contents=False)
    except (OSError, FormatError) as e:
        stats.record_error(path, e)
    except Exception as e:
        # A parser bug must not end the scan; the traceback goes to the log.
        log.exception("reading %s failed", path)
        stats.record_error(path, e)
    return None


def _hash(path: str, stats: ScanStats) -> str | None:
    try:
        return sha256_file(Path(path))
    except OSError as e:
        stats.record_error(Path(path), e)
        return None


def _columns() -> int:
    return shutil.get_terminal_size((80, 24)).columns


def _cmd_enroll(args: argparse.Namespace, out: TextIO) -> int:
    data_dir = _data_dir(args)
    token = tokens.parse(args.token)
    host, port = _split(args.collector)
    ca_pem: bytes | None = None
    if args.ca:
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding

        cert = x509.load_pem_x509_certificate(args.ca.read_bytes())
        ca_pem = pick_ca([cert.public_bytes(Encoding.DER)], token.ca_fingerprint)
    elif not args.unsafe_plaintext:
        ca_pem = fetch_pinned_ca(host, port, token.ca_fingerprint)
    key = load_or_create_key(data_dir)
    plat = platform.current()
    shipper = Shipper(open_channel(args.collector, ca_pem))
    try:
        response = shipper.enroll(
            collector_pb2.EnrollRequest(
                token_id=token.token_id,
                token_secret=token.secret.encode(),
                public_key=raw_public_key(key.public_key()),
                host_name=platform.host_name(),
                host_os_type=plat.os_type,
                agent_version=__version__,
                csr_pem=client_csr(data_dir, agent_id(key)) if ca_pem else b"",  # delivery
            )
        )
    finally:
        shipper.close()
    save_client_cert(data_dir, response.client_cert_pem)  # delivery: mTLS
    if response.agent_id != agent_id(key):
        raise AgentError("the collector answered for another agent id")
    adopt_position(  # delivery: continue the collector's copy of this key's chain
        data_dir,
        last_seq=response.last_seq,
        last_digest=response.last_digest,
        agent_id=response.agent_id,
        key=key,
    )
    save_enrollment(
        data_dir,
        Enrollment(
            collector=args.collector,
            agent_id=response.agent_id,
            group=response.host_group,
            ca_pem=ca_pem.decode() if ca_pem else None,
            host_name=platform.host_name(),
            publish_to=mtls_target(host, response.mtls_port),  # delivery: mTLS
        ),
    )
    out.write(f"enrolled as {response.agent_id} in group {response.host_group}\n")
    return 0


def _run_settings(args: argparse.Namespace, data_dir: Path) -> Settings:
    """The config file, then the command line on top of it."""
    path = args.config or data_dir / "agent.toml"
    settings = load_config(path, missing_ok=args.config is None)
    changes: dict[str, Any] = {}
    if args.path:
        changes.update(roots=tuple(args.path), include_default_roots=args.default_paths)
    if args.exclude:
        changes["excludes"] = (*settings.excludes, *args.exclude)
    if args.interval is not None:
        changes["interval"] = args.interval
    plat = platform.current()
    settings = replace(settings, **changes)
    roots = resolve_roots(settings, plat.model_roots())
    excludes = (*settings.excludes, *plat.default_excludes())
    return replace(settings, roots=roots, excludes=tuple(dict.fromkeys(excludes)))


def _cmd_run(args: argparse.Namespace, out: TextIO) -> int:
    data_dir = _data_dir(args)
    enrollment = load_enrollment(data_dir)
    key = load_or_create_key(data_dir)
    settings = _run_settings(args, data_dir)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    spool = open_spool(data_dir / "spool.db", max_bytes=settings.spool_max_bytes)
    channel = open_channel(
        enrollment.publish_to or enrollment.collector,
        enrollment.ca_pem.encode() if enrollment.ca_pem else None,
        client_tls(data_dir, enrollment),  # delivery: mTLS client certificate
    )
    shipper = Shipper(channel)
    os_type = platform.current().os_type
    daemon = Daemon(
        settings=settings,
        host=HostFacts(enrollment.agent_id, enrollment.host_name, os_type, enrollment.group),
        key=key,
        spool=spool,
        state_dir=data_dir,
        stop=stop,
        process_sensor=_process_sensor(os_type) if settings.processes else None,
        gpu=gpu_source(os_type) if settings.processes else None,
    )
    if args.once:  # delivery: bounded, whatever the collector does
        daemon.ship_deadline = time.monotonic() + (300.0 if args.timeout is None else args.timeout)
    try:
        shipped = daemon.run(shipper, once=args.once)
    finally:
        stop.set()
        daemon.close()
        shipper.close()
        spool.close()
    stats = daemon.ship_stats
    out.write(f"acked {stats.acked} events; {stats.failures} failed attempts\n")
    return 0 if shipped else ship_exit_status(stats, sys.stderr)


def _cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    data_dir = _data_dir(args)
    status: dict[str, Any] = {"data_dir": str(data_dir), "version": __version__}
    try:
        enrollment = load_enrollment(data_dir)
        status.update(
            enrolled=True,
            agent_id=enrollment.agent_id,
            collector=enrollment.collector,
            group=enrollment.group,
        )
    except AgentError:
        status["enrolled"] = False
    if (data_dir / "spool.db").exists():
        spool = Spool.open(data_dir / "spool.db")
        stats = spool.stats()
        status.update(delivery_status(spool))  # delivery: revoked, quarantine, level
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


def main(
    argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    out, err = out or sys.stdout, err or sys.stderr
    commands = {"enroll": _cmd_enroll, "run": _cmd_run, "status": _cmd_status}
    try:
        if args.command == "scan":
            return _cmd_scan(args, out, err)
        return commands[args.command](args, out)
    except (AgentError, tokens.TokenError) as exc:
        err.write(f"error: {exc}\n")
        return 2
    except BrokenPipeError:
        # The reader (`| head`) went away: not an error of ours; keep Python from complaining.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - must outlive this frame
        return 0


if __name__ == "__main__":
    sys.exit(main())
