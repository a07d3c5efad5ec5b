"""`shadowai-agent`: scan, enroll, run and status; main(argv) -> int, the only exit point."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from agent import __version__, platform
from agent.daemon import Daemon, HostFacts, Settings
from agent.detect.model import model_file_fields
from agent.errors import AgentError
from agent.identity import (
    Enrollment,
    agent_id,
    load_enrollment,
    load_or_create_key,
    save_enrollment,
)
from agent.pinning import fetch_pinned_ca, pick_ca
from agent.sensors.files import ScanStats, scan, sha256_file
from agent.shipper import Shipper, open_channel
from agent.spool import Spool
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

    scan_p = sub.add_parser("scan", parents=[common], help="one-shot local inventory")
    scan_p.add_argument("paths", nargs="*", type=Path, help="default: this OS's model stores")
    scan_p.add_argument("--format", choices=["table", "json"], default="table")
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
    run.add_argument("--interval", type=float, default=300.0, help="seconds between passes")
    run.add_argument(
        "--timeout",
        type=float,
        default=0.0,
        help="with --once: give up waiting for acks after this many seconds",
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


def _cmd_scan(args: argparse.Namespace, out: TextIO) -> int:
    plat = platform.current()
    roots = args.paths or [p for p in plat.model_roots() if p.exists()]
    stats = ScanStats()
    progress = _Progress(sys.stderr) if sys.stderr.isatty() else None
    rows = []
    for obs in scan(roots, hash_contents=False, stats=stats):
        if progress:
            progress.update(stats.files_seen, obs.path)
        if not args.no_hash:
            obs = _with_hash(obs)
        rows.append(model_file_fields(obs))
    rows.sort(key=lambda f: str(f.get("file.path")))
    if progress:
        progress.done()
    common = {
        "event.dataset": "shadowai.model_file",
        "event.action": "snapshot",
        "@timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "agent.version": __version__,
        "host.name": platform.host_name(),
        "host.os.type": plat.os_type,
    }
    if args.format == "json":
        for fields in rows:
            out.write(json.dumps({**common, **fields}, sort_keys=True) + "\n")
    else:
        _print_table(rows, out)
    for problem in stats.errors:
        print(f"warning: {problem}", file=sys.stderr)
    if stats.permission_errors:
        print(f"warning: {stats.permission_errors} paths could not be read", file=sys.stderr)
    return 0


def _with_hash(obs: Any) -> Any:
    from dataclasses import replace

    return replace(obs, sha256=sha256_file(Path(obs.path)))


class _Progress:
    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def update(self, files: int, path: str) -> None:
        self._stream.write(f"\r\x1b[K{files} files scanned  {path[-60:]}")
        self._stream.flush()

    def done(self) -> None:
        self._stream.write("\r\x1b[K")
        self._stream.flush()


def _human(n: object, unit: str = "") -> str:
    if not isinstance(n, int):
        return "-"
    for suffix, scale in (("T", 10**12), ("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= scale:
            return f"{n / scale:.1f}{suffix}{unit}"
    return f"{n}{unit}"


def _print_table(rows: Iterable[dict[str, object]], out: TextIO) -> None:
    header = ("FORMAT", "PARAMS", "QUANT", "ARCH", "SIZE", "SHA256", "PATH")
    lines = [header]
    for f in rows:
        lines.append(
            (
                str(f.get("ai.model.format", "")),
                _human(f.get("ai.model.parameters")),
                str(f.get("ai.model.quantization", "-")),
                str(f.get("ai.model.architecture", "-")),
                _human(f.get("file.size"), "B"),
                str(f.get("file.hash.sha256", "-"))[:12],
                str(f.get("file.path", "")),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    for line in lines:
        cells = [cell.ljust(width) for cell, width in zip(line, widths, strict=False)]
        out.write("  ".join([*cells, line[-1]]).rstrip() + "\n")
    out.write(f"{len(lines) - 1} model files\n")


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
            )
        )
    finally:
        shipper.close()
    if response.agent_id != agent_id(key):
        raise AgentError("the collector answered for another agent id")
    save_enrollment(
        data_dir,
        Enrollment(
            collector=args.collector,
            agent_id=response.agent_id,
            group=response.host_group,
            ca_pem=ca_pem.decode() if ca_pem else None,
            host_name=platform.host_name(),
        ),
    )
    out.write(f"enrolled as {response.agent_id} in group {response.host_group}\n")
    return 0


def _cmd_run(args: argparse.Namespace, out: TextIO) -> int:
    data_dir = _data_dir(args)
    enrollment = load_enrollment(data_dir)
    key = load_or_create_key(data_dir)
    plat = platform.current()
    roots = tuple(args.path) or tuple(plat.model_roots())
    if args.path and args.default_paths:
        roots = (*roots, *plat.model_roots())
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if args.once and args.timeout > 0:
        deadline = threading.Timer(args.timeout, stop.set)
        deadline.daemon = True  # must not keep the process alive once the pass is acked
        deadline.start()
    spool = Spool.open(data_dir / "spool.db")
    channel = open_channel(
        enrollment.collector, enrollment.ca_pem.encode() if enrollment.ca_pem else None
    )
    shipper = Shipper(channel)
    daemon = Daemon(
        settings=Settings(roots=roots, excludes=tuple(args.exclude), interval=args.interval),
        host=HostFacts(enrollment.agent_id, enrollment.host_name, plat.os_type, enrollment.group),
        key=key,
        spool=spool,
        state_dir=data_dir,
        stop=stop,
    )
    try:
        shipped = daemon.run(shipper, once=args.once)
    finally:
        stop.set()
        shipper.close()
        spool.close()
    stats = daemon.ship_stats
    out.write(f"acked {stats.acked} events; {stats.failures} failed attempts\n")
    return 0 if shipped else 1


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


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    commands = {"scan": _cmd_scan, "enroll": _cmd_enroll, "run": _cmd_run, "status": _cmd_status}
    try:
        return commands[args.command](args, out or sys.stdout)
    except (AgentError, tokens.TokenError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader (`| head`) went away: not an error of ours; keep Python from complaining.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - must outlive this frame
        return 0


if __name__ == "__main__":
    sys.exit(main())
