"""Crash-safe files under the data directory: atomic writes, the instance lock, SQLite."""
