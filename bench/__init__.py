"""Benchmarks: `make bench` prints each figure, with ratios to references from the same run."""
