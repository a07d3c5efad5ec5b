"""Run every benchmark and print one line per figure."""

from __future__ import annotations

import sys

from bench import classifier, pipeline, processes, rules, scanning, watch_idle


def main() -> int:
    for module in (pipeline, scanning, processes, classifier, rules):
        for line in module.run():
            print(line, flush=True)
    for line in watch_idle.measure(dirs=5000, seconds=10.0, unfiltered=False):
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
