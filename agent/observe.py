"""Walk roots and identify model files, with a hook before each file; shared by `scan` and
the daemon, so a progress bar, the watchdog's breadcrumb and a pause all see every file.

Built on the file sensor's public steps (iter_files, observe_file); coverage is kept per
root so that a permission gap can be reported against the root it hides.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agent.detect.model import FileObservation
from agent.errors import FormatError
from agent.sensors.files import ScanStats, iter_files, observe_file

log = logging.getLogger(__name__)

OnFile = Callable[[str, ScanStats], None]  # called before a file is opened


@dataclass
class Coverage:
    """What a walk covered: totals, and permission gaps per root."""

    stats: ScanStats = field(default_factory=ScanStats)
    gaps_by_root: dict[str, int] = field(default_factory=dict)

    def gap_lines(self, limit: int = 20) -> list[str]:
        """ "ROOT: N" for each root with unreadable paths, most gaps first."""
        ranked = sorted(self.gaps_by_root.items(), key=lambda item: (-item[1], item[0]))
        return [f"{root}: {count}" for root, count in ranked[:limit]]


def observe_tree(
    roots: Sequence[Path],
    *,
    excludes: Sequence[str],
    coverage: Coverage,
    stop: threading.Event | None = None,
    on_file: OnFile | None = None,
) -> Iterator[FileObservation]:
    """Every model file under the roots, identified by its header (never hashed here)."""
    total = coverage.stats
    for root in roots:
        if stop is not None and stop.is_set():
            return
        before = total.permission_errors
        for path, st in iter_files([root], excludes=excludes, stats=total, stop=stop):
            if on_file is not None:
                on_file(str(path), total)
            if stop is not None and stop.is_set():
                return
            obs = _observe(path, st, total)
            if obs is not None:
                total.models_found += 1
                yield obs
        if total.permission_errors > before:
            coverage.gaps_by_root[str(root)] = total.permission_errors - before


def _observe(path: Path, st: os.stat_result, stats: ScanStats) -> FileObservation | None:
    try:
        return observe_file(path, st, hash_contents=False)
    except (OSError, FormatError) as e:
        stats.record_error(path, e)
    except Exception as e:
        # A parser bug must not end the walk; the traceback goes to the log.
        log.exception("reading %s failed", path)
        stats.record_error(path, e)
    return None
