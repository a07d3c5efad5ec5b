"""Adapters that read the operating system: files, processes, sockets."""
