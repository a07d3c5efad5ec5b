"""`shadowai-agent`: scan, enroll, run, status and config check; main(argv) -> int, the only
exit point."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from agent import __version__, platform
from agent.config import ConfigError, load_config
from agent.errors import AgentError
from agent.run_command import cmd_run, cmd_status, config_path, data_dir
from wire import tokens

# Commands import what they need when they run: the watchdog's supervisor process is this
# module too, and must not carry gRPC, the classifier and the parsers it never uses.

log = logging.getLogger("shadowai.agent")


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand's copy must not overwrite a value given before the subcommand.
    common.add_argument(
        "--data-dir", type=Path, default=argparse.SUPPRESS, help="identity, spool and caches"
    )
    common.add_argument(
        "--config",
        type=Path,
        default=argparse.SUPPRESS,
        help="agent.toml (default: /etc/shadowai/agent.toml, /Library/Application Support/"
        "shadowai/agent.toml or %%ProgramData%%\\shadowai\\agent.toml)",
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
    run.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # under watchdog
    run.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="with --once: give up waiting for acks after this many seconds (default 300; "
        "exit status 75 when given up, 3 when the collector revoked this agent)",
    )

    sub.add_parser(
        "status",
        parents=[common],
        help="enrollment, service, last contact, last error, quarantine and spool as JSON",
    )
    config = sub.add_parser("config", parents=[common], help="the configuration file")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    config_sub.add_parser(
        "check",
        parents=[common],
        help="print every problem of agent.toml with file:line; status 1 if any",
    )
    return parser


def _split(target: str) -> tuple[str, int]:
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise AgentError(f"--collector {target!r}: expected HOST:PORT")
    return host.strip("[]"), int(port)


def _cmd_enroll(args: argparse.Namespace, out: TextIO) -> int:
    from agent.delivery_cli import adopt_position, client_csr, mtls_target, save_client_cert
    from agent.identity import Enrollment, agent_id, load_or_create_key, save_enrollment
    from agent.pinning import fetch_pinned_ca, pick_ca
    from agent.shipper import Shipper, open_channel
    from wire.envelope import raw_public_key
    from wire.v1 import collector_pb2

    folder = data_dir(args)
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
    key = load_or_create_key(folder)
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
                csr_pem=client_csr(folder, agent_id(key)) if ca_pem else b"",  # for mTLS
            )
        )
    finally:
        shipper.close()
    save_client_cert(folder, response.client_cert_pem)
    if response.agent_id != agent_id(key):
        raise AgentError("the collector answered for another agent id")
    adopt_position(  # continue the collector's copy of this key's chain
        folder,
        last_seq=response.last_seq,
        last_digest=response.last_digest,
        agent_id=response.agent_id,
        key=key,
    )
    save_enrollment(
        folder,
        Enrollment(
            collector=args.collector,
            agent_id=response.agent_id,
            group=response.host_group,
            ca_pem=ca_pem.decode() if ca_pem else None,
            host_name=platform.host_name(),
            publish_to=mtls_target(host, response.mtls_port),
        ),
    )
    out.write(f"enrolled as {response.agent_id} in group {response.host_group}\n")
    return 0


def _cmd_config(args: argparse.Namespace, out: TextIO) -> int:
    """`config check`: every problem of the file with file:line, or where the settings come from."""
    path, missing_ok = config_path(args)
    if missing_ok and not path.exists():
        out.write(f"{path}: no configuration file; the defaults apply\n")
        return 0
    try:
        load_config(path, missing_ok=False)
    except ConfigError as exc:
        for problem in exc.problems:
            out.write(f"{problem}\n")
        noun = "problem" if len(exc.problems) == 1 else "problems"
        out.write(f"{len(exc.problems)} {noun}\n")
        return 1
    out.write(f"{path}: ok\n")
    return 0


def main(
    argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    out, err = out or sys.stdout, err or sys.stderr
    args.argv = list(argv if argv is not None else sys.argv[1:])
    commands: dict[str, Callable[[argparse.Namespace, TextIO], int]] = {
        "enroll": _cmd_enroll,
        "run": cmd_run,
        "status": cmd_status,
        "config": _cmd_config,
    }
    try:
        if args.command == "scan":
            from agent.scan_command import cmd_scan

            return cmd_scan(args, out, err)
        return commands[args.command](args, out)
    except ConfigError as exc:
        for problem in exc.problems:
            err.write(f"error: {problem}\n")
        return 2
    except (AgentError, tokens.TokenError) as exc:
        err.write(f"error: {exc}\n")
        return 2
    except BrokenPipeError:
        # The reader (`| head`) went away: not an error of ours; keep Python from complaining.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - must outlive this frame
        return 0


if __name__ == "__main__":
    sys.exit(main())
