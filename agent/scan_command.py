"""`shadowai-agent scan`: walk, identify, group and describe through the daemon's pipeline,
then print a table, JSON lines or a CycloneDX ML-BOM. Nothing is sent anywhere."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from agent import __version__, pipeline, platform, users
from agent.catalog import Stores, catalog_models, safe_stores
from agent.errors import AgentError
from agent.inventory import Ledger
from agent.observe import Coverage, observe_tree
from agent.pipeline import HostFacts
from agent.report import ScanProgress, printable, render_processes, render_table
from agent.sensors.files import ScanStats, sha256_file
from agent.sensors.processes import ProcessSensor
from agent.sensors.stores import load_store_index

log = logging.getLogger("shadowai.agent")


def cmd_scan(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    plat = platform.current()
    roots, stores = scan_roots(args.paths, plat)
    coverage = Coverage()
    progress = ScanProgress(err, columns=columns()) if err.isatty() else None
    rows = scan_rows(
        roots,
        excludes=args.exclude,
        hash_contents=not args.no_hash,
        coverage=coverage,
        progress=progress,
        stores=stores,
    )
    now = time.time()
    host = HostFacts(agent_id="", host_name=platform.host_name(), os_type=plat.os_type)
    events = [pipeline.stamp(fields, "snapshot", host, now) for fields in rows]
    processes = [] if args.no_processes else scan_processes(plat.os_type)
    if args.format == "json":
        for event in [*events, *(pipeline.stamp(f, "snapshot", host, now) for f in processes)]:
            out.write(json.dumps(event, sort_keys=True) + "\n")
    elif args.format == "cyclonedx":
        from agent.bom import build_bom  # only this format needs cyclonedx-python-lib

        moment = datetime.fromtimestamp(now, UTC)
        out.write(build_bom(events, tool_version=__version__, now=moment, host_name=host.host_name))
    else:
        width = columns() if out.isatty() else None
        out.write(render_table(rows, width=width))
        if processes:
            out.write("\n" + render_processes(processes, width=width))
    warn(coverage, err)
    return 0


def warn(coverage: Coverage, err: TextIO) -> None:
    stats = coverage.stats
    for problem in stats.errors:
        err.write(f"warning: {printable(problem)}\n")
    if stats.error_count > len(stats.errors):
        err.write(f"warning: {stats.error_count - len(stats.errors)} more problems not shown\n")
    if stats.permission_errors:
        err.write(f"warning: {stats.permission_errors} paths could not be read (permission)\n")
        for line in coverage.gap_lines():
            err.write(f"warning:   under {printable(line)}\n")


def scan_processes(os_type: str) -> list[dict[str, object]]:
    """Every inference process running now, as inference_process fields (one scan)."""
    sensor = process_sensor(os_type)
    return [dict(fields) for _, fields in sensor.poll(snapshot=True)]


def process_sensor(os_type: str) -> ProcessSensor:
    """This OS's process sensor, scoring every process with the shipped classifier."""
    try:
        from agent.classifier import Classifier, ProcessScorer

        scorer = ProcessScorer(Classifier.shipped())
    except AgentError as exc:
        # Without the classifier, known runtimes are still found by their rules.
        log.warning("process classifier unavailable: %s", exc)
        return ProcessSensor.for_os(os_type)
    return ProcessSensor.for_os(os_type, scorer=scorer)


def scan_roots(paths: Sequence[Path], plat: platform.Platform) -> tuple[list[Path], Stores]:
    """The paths asked for, each of which must exist; else the model stores this user may
    read (every local user's, when privileged), and the store index to name them by."""
    if paths:
        missing = [str(p) for p in paths if not os.path.lexists(p)]
        if missing:
            raise AgentError(f"{', '.join(missing)}: no such file or directory")
        return list(paths), safe_stores()
    if not users.privileged():
        return [p for p in plat.model_roots() if p.exists()], safe_stores()
    people = users.local_users(plat)
    roots = users.store_roots(plat, people)
    return [r.path for r in roots if r.path.exists()], safe_stores(lambda: load_store_index(roots))


def scan_rows(
    roots: Sequence[Path],
    *,
    excludes: Sequence[str],
    hash_contents: bool,
    coverage: Coverage,
    progress: ScanProgress | None,
    stores: Stores,
) -> list[dict[str, Any]]:
    """The model_file fields of every model under the roots, in path order."""

    def before_file(path: str, stats: ScanStats) -> None:
        if progress:
            progress.update(stats, 0, path)

    found = list(observe_tree(roots, excludes=excludes, coverage=coverage, on_file=before_file))
    observed = pipeline.canonical(found, stores)
    ledger = Ledger()  # a fresh one: a file reachable under two names is listed once
    ledger.begin()
    rows = []
    hashed = 0
    for model in catalog_models(observed):
        digest = None
        if hash_contents and not model.members:
            if progress:
                progress.update(coverage.stats, hashed, model.path)
            digest = _hash(model.primary.path, coverage.stats)
            hashed += model.primary.size
        known = pipeline.describe(model, digest, stores)
        event = pipeline.record(ledger, model.path, known, snapshot=True, same_file=_same)
        if event is not None:
            rows.append(dict(event[1]))
    if progress:
        progress.done()
    rows.sort(key=lambda f: str(f.get("file.path")))
    return rows


def _same(path: str, key: tuple[int, int, int, int]) -> bool:
    return True  # the walk saw both names just now


def _hash(path: str, stats: ScanStats) -> str | None:
    try:
        return sha256_file(Path(path))
    except OSError as e:
        stats.record_error(Path(path), e)
        return None


def columns() -> int:
    return shutil.get_terminal_size((80, 24)).columns
