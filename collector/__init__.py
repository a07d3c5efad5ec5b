"""The shadowai collector: enrolls agents, verifies events, stores and governs the inventory."""

__version__ = "0.1.0"
