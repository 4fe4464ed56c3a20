"""Helpers for the real servers the tests start: a free loopback port, and stopping a child process for sure."""

from __future__ import annotations

import socket
import subprocess


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_or_kill(process: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    """Wait for a process asked to stop; kill it if it has not within ``timeout_s``."""
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
