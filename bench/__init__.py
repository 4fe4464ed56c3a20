"""Switchboard's performance benchmark harness: ``python bench/run.py`` (see bench/README.md)."""
