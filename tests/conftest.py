"""Settings for the whole suite."""

from __future__ import annotations

from hypothesis import settings

# Property tests that reach a real database or server share two loaded cores with the rest
# of the suite; a per-example time limit there measures the machine, not the code (speed
# has its own benchmarks under bench/).
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")
