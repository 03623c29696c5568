"""The client package's own tests run against a real system: `oddstream dev` (embedded Redis,
a gateway, a worker and the demo feed) started as a subprocess from the server's install.

The client's environment needs none of the server's packages: CI installs this package alone
in a fresh venv and points `ODDSTREAM_DEV_COMMAND` at the `oddstream` command of another.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class System:
    http: str
    ws: str
    token: str


@pytest.fixture(scope="session")
def system() -> Iterator[System]:
    command = shlex.split(os.environ.get("ODDSTREAM_DEV_COMMAND", "oddstream"))
    env = {**os.environ, "ODDSTREAM_PORT": "0", "ODDSTREAM_LOG_LEVEL": "WARNING"}
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("REDIS_URL", None)  # always the embedded Redis
    proc = subprocess.Popen(
        [*command, "dev", "--rate", "50"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,  # the banner and the logs
        text=True,
        env=env,
    )
    assert proc.stderr is not None
    banner: list[str] = []
    drain: threading.Thread | None = None
    deadline = time.monotonic() + 60
    try:
        for line in proc.stderr:
            banner.append(line)
            if "Press Ctrl-C to stop." in line or time.monotonic() > deadline:
                break
        text = "".join(banner)
        http = re.search(r"Dashboard\s+(http://[^/\s]+)/", text)
        token = re.search(r"Dev token\s+\(.*?\)\s+(\S+)", text)
        assert http and token, f"`oddstream dev` printed no URL or token:\n{text}"
        base = http.group(1)
        # Keep reading the logs so the pipe never fills and blocks the system.
        drain = threading.Thread(target=proc.stderr.read, daemon=True)
        drain.start()
        yield System(base, base.replace("http://", "ws://"), token.group(1))
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if drain is not None:
            drain.join(5)
        proc.stderr.close()
