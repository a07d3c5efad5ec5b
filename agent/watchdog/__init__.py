"""The watchdog: a supervisor process runs the worker and restarts it when it overspends."""
