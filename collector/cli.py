"""`shadowai-collector`: serve, tokens, api-tokens, users, agents and rules; main(argv) -> int."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import yaml

from collector import __version__, accounts, cli_db
from collector.errors import CollectorError, RuleError
from collector.export.fleet import fleet_bom
from collector.fdlimit import raise_open_files
from collector.forward import Forwarding, parse_config
from collector.governance import load_rule_dir
from collector.governance.live import LiveRules
from collector.governance.ruletest import run_rule_test_dir
from collector.governance.siem import convert_rules
from collector.paths import default_data_dir, default_rules_dir
from collector.pki import ServerPki, ensure_pki, server_names
from collector.retention import Retention
from collector.server import Running, split_address, start, start_ingest
from collector.store import Store
from collector.store.engine import StoreUnavailable
from collector.web import token_admin
from collector.web.token_admin import cli_actor
from collector.workers import Supervisor, usable_cpus, watch_parent, worker_count, worker_ready

log = logging.getLogger("shadowai.collector")
EX_UNAVAILABLE = 69  # sysexits.h: the database (a service we need) cannot be reached


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand's copy must not overwrite a value given before the subcommand.
    common.add_argument(
        "--data-dir", type=Path, default=argparse.SUPPRESS, help="keys, CA and database"
    )
    common.add_argument(
        "--database",
        default=argparse.SUPPRESS,
        help="SQLAlchemy URL (default: SQLite in the data dir)",
    )
    parser = argparse.ArgumentParser(prog="shadowai-collector", parents=[common])
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", parents=[common], help="run the collector")
    serve.add_argument("--grpc", default="127.0.0.1:50051", help="HOST:PORT for agents")
    serve.add_argument("--http", default="127.0.0.1:8080", help="HOST:PORT for the dashboard")
    serve.add_argument("--rules", type=Path, default=None, help="directory of Sigma rules")
    serve.add_argument("--tls-name", action="append", default=[], help="extra certificate name")
    serve.add_argument(
        "--enroll-rate",
        type=float,
        default=12.0,
        help="enrollments per minute allowed from one address, after a burst of 10 (default 12)",
    )
    serve.add_argument(
        "--grpc-mtls",
        default=None,
        help="HOST:PORT where agents publish with their client certificate "
        "(default: the --grpc host, its port + 1, or 0 when that is 0)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="processes serving agents on the same gRPC ports: this one plus N-1 workers "
        "(Linux; 0: one per usable CPU; default 1)",
    )
    # A worker of `--workers N`, started by the parent with its bound ports (not for people).
    serve.add_argument("--as-worker", action="store_true", help=argparse.SUPPRESS)
    serve.add_argument(
        "--unsafe-plaintext-grpc",
        action="store_true",
        help="serve gRPC without TLS (tests on one machine only)",
    )
    accounts.add_serve_options(serve)

    serve.add_argument(
        "--metrics",
        default=None,
        metavar="HOST:PORT",
        help="also serve /metrics alone, without a token, here (default: off; the dashboard "
        "port serves /metrics to any API token)",
    )
    serve.add_argument(
        "--retain-envelopes",
        type=int,
        default=30,
        metavar="DAYS",
        help="delete raw envelopes after DAYS (0: keep forever; at least 30; default 30)",
    )
    serve.add_argument(
        "--retain-events",
        type=int,
        default=90,
        metavar="DAYS",
        help="delete decoded events after DAYS (0: keep forever; default 90)",
    )
    serve.add_argument(
        "--forward-config",
        type=Path,
        default=None,
        help="YAML file with a `forward:` section: SIEM forwarding (docs/forwarding.md)",
    )
    export = sub.add_parser("export", parents=[common])
    export_sub = export.add_subparsers(dest="action", required=True)
    cdx = export_sub.add_parser(
        "cyclonedx", parents=[common], help="CycloneDX 1.6 ML-BOM of the fleet or one host"
    )
    cdx.add_argument("--host", default=None, help="only this host (host.name)")
    cdx.add_argument("--output", "-o", type=Path, default=None, help="file (default: stdout)")
    tok = sub.add_parser("tokens", parents=[common]).add_subparsers(dest="action", required=True)
    create = tok.add_parser("create", parents=[common], help="print a single-use enrollment token")
    create.add_argument("--group", default="default")
    create.add_argument("--expires-in", type=float, default=24.0, help="hours (0: never)")
    create.add_argument(
        "--uses", type=int, default=1, help="how many agents may enroll with it (default 1)"
    )
    tok.add_parser("list", parents=[common], help="enrollment tokens as JSON lines")
    tok_revoke = tok.add_parser("revoke", parents=[common], help="refuse a token from now on")
    tok_revoke.add_argument("token_id", help="the 16 hex digits after sae_")

    api = sub.add_parser("api-tokens", parents=[common])
    api_sub = api.add_subparsers(dest="action", required=True)
    api_create = api_sub.add_parser("create", parents=[common], help="print an API token")
    api_create.add_argument("--role", choices=["viewer", "analyst", "admin"], required=True)
    api_create.add_argument(
        "--expires-in", type=float, default=90.0, help="days (default 90; 0: never)"
    )
    api_sub.add_parser("list", parents=[common], help="API tokens as JSON lines")
    api_revoke = api_sub.add_parser("revoke", parents=[common], help="refuse an API token")
    api_revoke.add_argument("token_id")

    accounts.add_parser(sub, common)

    agents = sub.add_parser("agents", parents=[common])
    agents_sub = agents.add_subparsers(dest="action", required=True)
    agents_sub.add_parser("list", parents=[common], help="enrolled agents as JSON lines")
    revoke = agents_sub.add_parser("revoke", parents=[common], help="refuse an agent's key")
    revoke.add_argument("agent_id")

    rules = sub.add_parser("rules", parents=[common])
    rules_sub = rules.add_subparsers(dest="action", required=True)
    validate = rules_sub.add_parser("validate", parents=[common], help="check a rule directory")
    validate.add_argument("path", type=Path)
    test = rules_sub.add_parser("test", parents=[common], help="run a rule pack's tests")
    test.add_argument("path", type=Path)
    test.add_argument("--tests", type=Path, default=None, help="default: PATH/tests")
    convert = rules_sub.add_parser(
        "convert", parents=[common], help="rules as SQL queries over exported events"
    )
    convert.add_argument("path", type=Path, help="rules path (for its value lists)")
    convert.add_argument("files", type=Path, nargs="*", help="rule files (default: every rule)")
    convert.add_argument("--dotted", action="store_true", help="keep dotted field names")
    cli_db.add_parser(sub, common)
    return parser


def _data_dir(args: argparse.Namespace) -> Path:
    path: Path = getattr(args, "data_dir", None) or default_data_dir()
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def _database_url(args: argparse.Namespace) -> str:
    return getattr(args, "database", None) or f"sqlite:///{_data_dir(args) / 'collector.db'}"


def _open_store(args: argparse.Namespace) -> Store:
    return Store.open(_database_url(args))


def _serve(args: argparse.Namespace) -> int:
    if args.as_worker:
        return _serve_worker(args)
    count = worker_count(args.workers, usable_cpus(), sys.platform)
    data_dir = _data_dir(args)
    access = accounts.access_settings(args)
    retention = Retention(envelopes_days=args.retain_envelopes, events_days=args.retain_events)
    live = LiveRules(args.rules or default_rules_dir())
    pki = _pki(args, data_dir)
    store = _open_store(args)  # first: an unreachable database stops us before any thread
    raise_open_files()  # before the first connection; workers inherit it
    forwarding = _forwarding(args.forward_config, data_dir)
    mtls_address = None if pki is None else _mtls_address(args.grpc, args.grpc_mtls)
    running = start(
        forward=forwarding,
        store=store,
        rules=live,
        grpc_address=args.grpc,
        http_address=args.http,
        pki=pki,
        mtls_address=mtls_address,
        enroll_per_minute=args.enroll_rate,
        access=access,
        allowed_hosts=args.allowed_host,
        metrics_address=args.metrics,
        retention=retention,
    )
    workers = None
    if count > 1:
        command = _worker_command(args, data_dir, live.path, running)
        workers = Supervisor(command, count - 1)
        try:
            workers.start()
        except CollectorError:
            running.stop()
            raise
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(f"grpc listening on {running.grpc_address}", flush=True)
    print(f"dashboard on http://{running.http_address}/", flush=True)
    if running.service.mtls_port:
        print(f"grpc mtls listening on {_mtls_bound(running)}", flush=True)
    if running.metrics_address is not None:
        print(f"metrics on http://{running.metrics_address}/metrics", flush=True)
    rules_count = len(live.current().rules)
    log.info("%d rules loaded, watching %s; tls=%s", rules_count, live.path, pki is not None)
    stop.wait()
    if workers is not None:
        workers.stop()
    running.stop()
    if forwarding is not None:
        forwarding.close()  # after gRPC stopped: the last batches are queued; the rest next start
    store.close()
    return 0


def _serve_worker(args: argparse.Namespace) -> int:
    """`serve --as-worker`: gRPC alone on the parent's ports, until the parent closes our
    stdin (it stops us, or it died) or a signal comes. Its stdout is the parent's pipe."""
    data_dir = _data_dir(args)
    live = LiveRules(args.rules or default_rules_dir())
    pki = _pki(args, data_dir)
    store = _open_store(args)
    # Queue for the SIEM without sending: the parent's forwarder sends from the shared queue.
    forwarding = _forwarding(args.forward_config, data_dir, send=False)
    ingest = start_ingest(
        store=store,
        rules=live,
        grpc_address=args.grpc,
        pki=pki,
        mtls_address=None if pki is None else args.grpc_mtls,
        enroll_per_minute=args.enroll_rate,
        forward=forwarding,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    watch_parent(stop)
    worker_ready()
    stop.wait()
    ingest.stop()
    if forwarding is not None:
        forwarding.close()
    store.close()
    return 0


def _pki(args: argparse.Namespace, data_dir: Path) -> ServerPki | None:
    if args.unsafe_plaintext_grpc:
        return None
    names = server_names([split_address(args.grpc)[0], *args.tls_name])
    return ensure_pki(data_dir / "pki", names=names, now=datetime.now(UTC))


def _mtls_bound(running: Running) -> str:
    host = running.grpc_address.rpartition(":")[0]
    return f"{host}:{running.service.mtls_port}"


def _worker_command(
    args: argparse.Namespace, data_dir: Path, rules: Path, running: Running
) -> list[str]:
    """How the parent starts a worker: this program, on the ports it bound (port 0 was
    resolved), with what serving agents needs; the dashboard's options stay here."""
    command = [sys.executable, "-m", "collector.cli", "serve", "--as-worker"]
    command += ["--data-dir", str(data_dir.resolve()), "--database", _database_url(args)]
    command += ["--rules", str(rules.resolve()), "--grpc", running.grpc_address]
    command += ["--enroll-rate", repr(args.enroll_rate)]
    if running.service.mtls_port:
        command += ["--grpc-mtls", _mtls_bound(running)]
    if args.unsafe_plaintext_grpc:
        command.append("--unsafe-plaintext-grpc")
    for name in args.tls_name:
        command += ["--tls-name", name]
    if args.forward_config is not None:
        command += ["--forward-config", str(args.forward_config.resolve())]
    return command


def _forwarding(path: Path | None, data_dir: Path, *, send: bool = True) -> Forwarding | None:
    """SIEM forwarding from the config file, or None; the HEC token may come from
    SHADOWAI_HEC_TOKEN so that it stays out of files and argv. Without `send`, only queues."""
    if path is None:
        return None
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise CollectorError(f"{path}: {exc}") from None
    section = dict(raw.get("forward") or {}) if isinstance(raw, dict) else {}
    hec = section.get("hec")
    token = os.environ.get("SHADOWAI_HEC_TOKEN")
    if isinstance(hec, dict) and "token" not in hec and token:
        section["hec"] = {**hec, "token": token}
    config = parse_config(section)
    if not config.enabled:
        return None
    forwarding = Forwarding.open(config, data_dir=data_dir)
    if send:
        forwarding.start()
    return forwarding


def _export(args: argparse.Namespace) -> int:
    store = _open_store(args)
    try:
        text = fleet_bom(store, host=args.host, now=datetime.now(UTC))
    finally:
        store.close()
    if args.output is None:
        print(text)
    else:
        args.output.write_text(text + "\n")
    return 0


def _mtls_address(grpc_address: str, given: str | None) -> str:
    if given is not None:
        return given
    host, port = split_address(grpc_address)
    return (
        f"[{host}]:{port + 1 if port else 0}"
        if ":" in host
        else f"{host}:{port + 1 if port else 0}"
    )


def _tokens(args: argparse.Namespace) -> int:
    if args.action == "create":
        return _tokens_create(args)
    return _list_or_revoke(
        args,
        "enrollment token",
        Store.list_enrollment_tokens,
        Store.revoke_enrollment_token,
    )


def _api_tokens(args: argparse.Namespace) -> int:
    if args.action == "create":
        return _api_tokens_create(args)
    return _list_or_revoke(args, "API token", Store.list_api_tokens, Store.revoke_api_token)


def _list_or_revoke(
    args: argparse.Namespace,
    what: str,
    listing: Callable[[Store], list[dict[str, object]]],
    revoke: Callable[..., bool],
) -> int:
    """`list` prints one JSON line per token; `revoke TOKEN_ID` refuses it from now on.
    `what`: how messages name the token; the store audits the revocation."""
    store = _open_store(args)
    try:
        if args.action == "revoke":
            if not revoke(store, args.token_id, now=datetime.now(UTC), actor=cli_actor()):
                raise CollectorError(f"no {what} {args.token_id!r}")
            return 0
        for item in listing(store):
            print(json.dumps(item))
    finally:
        store.close()
    return 0


def _tokens_create(args: argparse.Namespace) -> int:
    data_dir = _data_dir(args)
    now = datetime.now(UTC)
    pki = ensure_pki(data_dir / "pki", names=server_names([]), now=now)
    store = _open_store(args)
    try:
        token = token_admin.create_enrollment_token(
            store,
            ca_fingerprint=pki.ca_fingerprint,
            group=args.group,
            uses=args.uses,
            expires_in_hours=max(args.expires_in, 0.0),  # negative meant never, as before
            actor=cli_actor(),
            now=now,
        )
    finally:
        store.close()
    print(token.text)
    return 0


def _api_tokens_create(args: argparse.Namespace) -> int:
    if args.expires_in < 0:
        raise CollectorError(f"--expires-in {args.expires_in}: days, 0 for never")
    store = _open_store(args)
    try:
        token = token_admin.create_api_token(
            store,
            role=args.role,
            expires_in_hours=args.expires_in * 24,
            actor=cli_actor(),
            now=datetime.now(UTC),
        )
    finally:
        store.close()
    print(token.text)
    return 0


def _users(args: argparse.Namespace) -> int:
    store = _open_store(args)
    try:
        return accounts.run(args, store, sys.stdin, print)
    finally:
        store.close()


def _agents(args: argparse.Namespace) -> int:
    store = _open_store(args)
    try:
        if args.action == "revoke":
            if not store.revoke_agent(args.agent_id, actor=cli_actor()):
                raise CollectorError(f"no agent {args.agent_id!r}")
            return 0
        for agent in store.list_agents():
            print(
                json.dumps(
                    {
                        "agent_id": agent.record.agent_id,
                        "host.name": agent.record.host_name,
                        "host.group": agent.record.group,
                        "last_seq": agent.last_seq,
                        "revoked": agent.revoked,
                        "last_seen": agent.last_seen.isoformat() if agent.last_seen else None,
                    }
                )
            )
    finally:
        store.close()
    return 0


def _db(args: argparse.Namespace) -> int:
    return cli_db.run(args.action, _database_url(args))


def _rules(args: argparse.Namespace) -> int:
    if args.action == "convert":
        for line in convert_rules(args.path, args.files, columns=not args.dotted):
            print(line)
        return 0
    ruleset = load_rule_dir(args.path)  # RuleError lists every problem of every file
    if args.action == "validate":
        print(
            f"{len(ruleset.rules)} rules, {len(ruleset.waivers)} exceptions and "
            f"{len(ruleset.correlations)} correlations OK in {args.path}"
        )
        return 0
    results = run_rule_test_dir(args.path, args.tests or args.path / "tests")
    failed = [r for r in results if not r.passed]
    for result in failed:
        print(f"FAIL {result}")
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed or not results else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # One-shot commands print their answer on stdout; only the long-running ones narrate.
    level = logging.INFO if args.command in ("serve", "db") else logging.WARNING
    # A worker of `serve --workers N` logs to the same stderr: say which process speaks.
    who = "worker %(process)d " if getattr(args, "as_worker", False) else ""
    logging.basicConfig(level=level, format=f"%(asctime)s %(levelname)s {who}%(name)s %(message)s")
    handlers = {
        "serve": _serve,
        "tokens": _tokens,
        "api-tokens": _api_tokens,
        "users": _users,
        "agents": _agents,
        "rules": _rules,
        "export": _export,
        "db": _db,
    }
    logging.getLogger("alembic").setLevel(logging.WARNING)  # "Context impl ..." on every open
    try:
        return handlers[args.command](args)
    except StoreUnavailable as exc:
        print(f"shadowai-collector: {exc}", file=sys.stderr)
        return EX_UNAVAILABLE
    except RuleError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    except CollectorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
