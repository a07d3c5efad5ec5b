"""Run every benchmark and print one line per figure."""

from __future__ import annotations

import sys

from bench import pipeline, scanning


def main() -> int:
    for module in (pipeline, scanning):
        for line in module.run():
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
