"""Open-file limit of `serve`: every agent holds a connection, so raise the soft limit to
the hard one (a collector facing 20,000 agents needs 20,000 descriptors and more)."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)
# Linux refuses a soft limit above fs.nr_open (1,048,576 by default) even when the hard
# limit says unlimited; macOS refuses more than OPEN_MAX for the same reason.
UNLIMITED_CEILING = 1_048_576


def soft_target(soft: int, hard: int, infinity: int, ceiling: int = UNLIMITED_CEILING) -> int:
    """The soft limit to ask for: the hard one, bounded when that is unlimited; never lower."""
    if soft == infinity:
        return soft
    wanted = ceiling if hard == infinity else hard
    return max(soft, wanted)


def raise_open_files() -> int | None:
    """Raise this process's soft RLIMIT_NOFILE as far as allowed; the limit now in force
    (None where there are no such limits: Windows). Children inherit it."""
    try:
        import resource
    except ImportError:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = soft_target(soft, hard, resource.RLIM_INFINITY)
    if target != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-file limit from %d to %d: %s", soft, target, exc)
    log.info("open-file limit %s (hard %s); each agent connection takes one", soft, hard)
    return int(soft)
