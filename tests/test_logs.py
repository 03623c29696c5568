"""Structured logs (shared/logs.py): what real processes write, and how the code logs.

- a gateway in production writes JSON lines on stderr, each with `timestamp` (ISO, UTC),
  `level`, `event` and `logger`; a client's connection and disconnection carry its
  `client_id` and the `gateway`; the token in the query string is in no line;
- in development (and with ODDSTREAM_LOG_FORMAT=console) the lines are readable text without
  colour codes; ODDSTREAM_LOG_FORMAT=json overrides development; `oddstream dev` is readable;
- under gunicorn (deploy/gunicorn.conf.py) gunicorn's own lines and the gateways' are the same
  JSON lines;
- exceptions: a traceback string in JSON, the traceback after the line in the console;
- levels below the configured one are empty methods;
- every log call in gateway/, workers/, shared/ and deploy/ names a constant event, with the
  values in keyword fields that stdlib logging can carry.
"""

from __future__ import annotations

import ast
import asyncio
import logging
import os
import re
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson
import pytest
import structlog

from oddstream.embedded import free_port
from oddstream.gateway.auth import issue_token
from oddstream.shared import logs
from oddstream.shared.logs import formatter
from oddstream.shared.settings import Settings
from tests.harness import Client, wait_healthy, wait_until
from tests.test_cli import ROOT, CliProcess, cli_env, cli_process

STRONG = secrets.token_hex(32)
FAST = {"ODDSTREAM_SHUTDOWN_GRACE": "2", "ODDSTREAM_LOG_LEVEL": "INFO"}


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A clean working directory, so no stray `.env` changes the settings under test."""
    path = tmp_path / "cwd"
    path.mkdir()
    return path


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of `text` as a JSON object; fails on the first line that is not one, or
    lacks the keys every line has."""
    lines = []
    for line in text.splitlines():
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise AssertionError(f"not a JSON line: {line!r}\n{text}") from None
        assert isinstance(record, dict), line
        assert {"timestamp", "level", "event", "logger"} <= record.keys(), line
        stamp = datetime.fromisoformat(record["timestamp"])
        assert stamp.utcoffset() == UTC.utcoffset(None), line
        assert record["level"] in {"debug", "info", "warning", "error", "critical"}, line
        lines.append(record)
    return lines


def is_json(line: str) -> bool:
    try:
        return isinstance(orjson.loads(line), dict)
    except orjson.JSONDecodeError:
        return False


async def connect_and_leave(port: int, token: str | None = None) -> tuple[str, str]:
    """A real client connects, then closes: its (client_id, gateway id) from the welcome."""
    url = f"ws://127.0.0.1:{port}/ws/v2/connect" + (f"?token={token}" if token else "")
    client = await Client.connect(url)
    welcome = client.of("welcome")[0]
    await client.close()
    assert client.client_id is not None
    return client.client_id, welcome["data"]["gateway"]


async def stop(proc: CliProcess) -> None:
    proc.signal(signal.SIGTERM)
    assert await proc.exit_status(10) == 0, proc.stderr


# --- a real gateway process ----------------------------------------------------------------


async def test_a_production_gateway_writes_json_lines_with_the_client_and_gateway(
    settings: Settings, prefix: str, workdir: Path
) -> None:
    port = free_port()
    env = cli_env(settings.effective_redis_url, prefix, ODDSTREAM_ENV="production",
                  JWT_SECRET=STRONG, **FAST)  # fmt: skip
    token = issue_token(STRONG, "alice")
    async with cli_process("gateway", "--port", str(port), env=env, cwd=workdir) as gateway:
        await gateway.wait_for_line('"gateway.listening"', 15)
        client_id, gateway_id = await connect_and_leave(port, token)
        await gateway.wait_for_line('"gateway.client.disconnected"', 5)
        await gateway.wait_for_line('"path":"/ws/v2/connect"', 5)  # the upgrade's access line
        await stop(gateway)
    lines = json_lines(gateway.stderr)
    events = {line["event"]: line for line in lines}
    assert events["gateway.listening"]["port"] == port
    assert events["gateway.started"]["gateway"] == gateway_id
    connected = events["gateway.client.connected"]
    disconnected = events["gateway.client.disconnected"]
    for line in (connected, disconnected):
        assert (line["client_id"], line["gateway"]) == (client_id, gateway_id)
        assert line["user"] == "alice"
        assert line["logger"] == "oddstream.gateway.app" and line["level"] == "info"
    assert disconnected["code"] == 1000
    # aiohttp's access log is a JSON line too, with the path only: the token is in no line.
    access = [line for line in lines if line["event"] == "http.access"]
    assert any(line["path"] == "/ws/v2/connect" and line["status"] == 101 for line in access)
    assert token not in gateway.stderr
    assert "gateway.stopped" in events


@pytest.mark.parametrize(
    ("env", "log_format", "expect_json"),
    [("development", None, False), ("production", "console", False), ("development", "json", True)],
    ids=["development", "console_in_production", "json_in_development"],
)
async def test_the_format_follows_the_env_unless_set(
    settings: Settings, prefix: str, workdir: Path, env: str, log_format: str | None,
    expect_json: bool,
) -> None:  # fmt: skip
    port = free_port()
    extra = {"ODDSTREAM_ENV": env, "JWT_SECRET": STRONG, **FAST}
    if log_format is not None:
        extra["ODDSTREAM_LOG_FORMAT"] = log_format
    process_env = cli_env(settings.effective_redis_url, prefix, **extra)
    async with cli_process("gateway", "--port", str(port), env=process_env, cwd=workdir) as gw:
        await gw.wait_for_line("gateway.listening", 15)
        client_id, gateway_id = await connect_and_leave(port)
        await gw.wait_for_line("gateway.client.disconnected", 5)
        await stop(gw)
    if expect_json:
        lines = json_lines(gw.stderr)
        assert any(line.get("client_id") == client_id for line in lines)
        return
    assert gw.lines and not any(is_json(line) for line in gw.lines), gw.stderr
    assert "\x1b[" not in gw.stderr  # stderr is a pipe, not a terminal: no colours
    (connected,) = [line for line in gw.lines if "gateway.client.connected" in line]
    # `2026-01-02T03:04:05.678901Z [info     ] gateway.client.connected [logger] key=value ...`
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z \[info\s*\] ", connected), connected
    assert f"client_id={client_id}" in connected and f"gateway={gateway_id}" in connected


@pytest.mark.slow
async def test_dev_writes_readable_lines(prefix: str, workdir: Path) -> None:
    port = free_port()
    env = cli_env(None, prefix, ODDSTREAM_LOG_LEVEL="INFO")  # no REDIS_URL: embedded Redis
    async with cli_process("dev", "--port", str(port), "--rate", "5", env=env, cwd=workdir) as dev:
        await dev.wait_for_line("Press Ctrl-C to stop.", 30)
        client_id, gateway_id = await connect_and_leave(port)
        line = await dev.wait_for_line("gateway.client.disconnected", 5)
        assert f"client_id={client_id}" in line and f"gateway={gateway_id}" in line
        dev.signal(signal.SIGINT)
        assert await dev.exit_status(15) == 0, dev.stderr
    logged = [line for line in dev.lines if re.match(r"^\d{4}-\d\d-\d\dT", line)]
    assert any("gateway.listening" in line for line in logged)
    assert any("worker.started" in line for line in logged)
    assert any("dev.stopped" in line for line in logged)
    assert not any(is_json(line) for line in dev.lines), dev.stderr


def gunicorn(env: dict[str, str], workdir: Path, log: IO[str]) -> subprocess.Popen[bytes]:
    """gunicorn with deploy/gunicorn.conf.py, running; its stderr goes to `log`."""
    command = [sys.executable, "-m", "gunicorn", "oddstream.gateway.app:gunicorn_app",
               "-c", str(ROOT / "deploy" / "gunicorn.conf.py")]  # fmt: skip
    return subprocess.Popen(command, env=env, cwd=workdir, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=log)  # fmt: skip


@pytest.mark.slow
async def test_gunicorn_master_and_workers_write_the_same_json_lines(
    settings: Settings, prefix: str, workdir: Path
) -> None:
    port = free_port()
    env = cli_env(settings.effective_redis_url, prefix, JWT_SECRET=STRONG, ODDSTREAM_PORT=str(port),
                  ODDSTREAM_HOST="127.0.0.1", ODDSTREAM_GATEWAY_PROCESSES="1", **FAST)  # fmt: skip
    log_path = workdir / "gunicorn.log"
    with log_path.open("w") as log:
        master = gunicorn(env, workdir, log)
        try:
            await wait_healthy(port, message="gunicorn up")
            client_id, gateway_id = await connect_and_leave(port)
            await wait_until(lambda: "gateway.client.disconnected" in log_path.read_text(),
                             timeout=5, message="disconnection logged")  # fmt: skip
            master.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(master.wait, 15) == 0, log_path.read_text()
        finally:
            if master.poll() is None:
                master.kill()
                master.wait()
    lines = json_lines(log_path.read_text())
    by_logger = {line["logger"] for line in lines}
    assert "gunicorn.error" in by_logger  # the master's own lines ("Starting gunicorn", ...)
    assert any(line["event"].startswith("Booting worker") for line in lines)
    (disconnected,) = [line for line in lines if line["event"] == "gateway.client.disconnected"]
    assert (disconnected["client_id"], disconnected["gateway"]) == (client_id, gateway_id)
    assert any(line["event"] == "gateway.stopped" for line in lines)


# --- the formatter, the levels -------------------------------------------------------------


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, list[str]]]:
    """A private stdlib logger whose handler keeps what `formatter` renders; no global
    logging or structlog configuration is touched."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    logger = logging.Logger("oddstream.test_logs", logging.DEBUG)
    handler = Keep()
    logger.addHandler(handler)
    yield logger, lines
    logger.removeHandler(handler)


def structlog_on(logger: logging.Logger) -> Any:
    """A structlog logger on `logger` with the processors `configure_structlog` installs."""
    return structlog.wrap_logger(
        logger,
        processors=[*logs._COMMON, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    )


def test_exceptions_are_a_traceback_string_in_json(
    captured: tuple[logging.Logger, list[str]],
) -> None:
    logger, lines = captured
    logger.handlers[0].setFormatter(formatter("json"))
    log = structlog_on(logger).bind(client_id="c-1", gateway="gw-1")
    try:
        _ = 1 / 0
    except ZeroDivisionError:
        log.exception("gateway.message.failed")
    try:
        raise ValueError("from a library")
    except ValueError:
        logger.exception("Error handling request")  # a stdlib record, as aiohttp's are
    ours, theirs = json_lines("\n".join(lines))
    assert (ours["event"], ours["level"], ours["client_id"], ours["gateway"]) == (
        "gateway.message.failed", "error", "c-1", "gw-1",
    )  # fmt: skip
    assert ours["exception"].startswith("Traceback (most recent call last):")
    assert ours["exception"].rstrip().endswith("ZeroDivisionError: division by zero")
    assert (theirs["event"], theirs["logger"]) == ("Error handling request", logger.name)
    assert theirs["exception"].rstrip().endswith("ValueError: from a library")
    assert list(ours)[:4] == ["timestamp", "level", "event", "logger"]


def test_exceptions_follow_the_line_in_the_console(
    captured: tuple[logging.Logger, list[str]],
) -> None:
    logger, lines = captured
    logger.handlers[0].setFormatter(formatter("console"))
    log = structlog_on(logger)
    try:
        _ = 1 / 0
    except ZeroDivisionError:
        log.exception("worker.entry.failed", stream=b"oddstream:ingest:3", entry_id=b"1-0")
    (text,) = lines
    first, *rest = text.splitlines()
    assert "worker.entry.failed" in first
    assert "entry_id=1-0" in first and "stream=oddstream:ingest:3" in first  # bytes decoded
    assert "Traceback (most recent call last):" in rest[0]
    assert rest[-1] == "ZeroDivisionError: division by zero"


def test_levels_below_the_configured_one_are_empty_methods(workdir: Path) -> None:
    """In a real process configured at WARNING, info and debug are the same no-op (no
    processors run, nothing is built), and only warning reaches stderr."""
    script = (
        "from oddstream.shared.logs import configure_logging, get_logger\n"
        "configure_logging('WARNING', 'json')\n"
        "log = get_logger('oddstream.test').bind(worker='w-1')\n"
        "assert log.info.__func__ is log.debug.__func__, 'info is not a no-op'\n"
        "assert log.warning.__func__ is not log.info.__func__\n"
        "log.info('test.hidden', room='r')\n"
        "log.warning('test.shown', room='r')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=workdir, capture_output=True,
                          text=True, timeout=30, check=False, env=cli_env(None))  # fmt: skip
    assert done.returncode == 0, done.stderr
    (line,) = json_lines(done.stderr)
    assert (line["event"], line["level"], line["worker"], line["room"]) == (
        "test.shown", "warning", "w-1", "r",
    )  # fmt: skip


# --- the source: constant event names, fields in keywords ---------------------------------

SOURCES = [ROOT / "gateway", ROOT / "workers", ROOT / "shared", ROOT / "deploy"]
LEVELS = frozenset({"debug", "info", "warning", "error", "exception", "critical"})
#: `log`, `self.log`, `self._log`, `conn_log`, `access_log`, `conn.logger`, ...
RECEIVER = re.compile(r"(^|_)log(ger)?$")
EVENT = re.compile(r"^[a-z_]+(\.[a-z_]+)+$")
#: Before `configure_logging`, fields become LogRecord attributes: these names would clash.
RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
#: The common fields, and names that would split them in two.
SYNONYMS = {"id": "a specific name", "client": "client_id", "gateway_id": "gateway",
            "worker_id": "worker", "room_id": "room", "user_id": "user", "exc": "error",
            "err": "error", "id_": "entry_id"}  # fmt: skip


def python_files() -> Iterator[Path]:
    """The server's Python files, each once (deploy/oddstream links the layer folders)."""
    for top in SOURCES:
        for folder, dirs, files in os.walk(top):  # links to folders are listed, not followed
            dirs[:] = [d for d in dirs if not (Path(folder) / d).is_symlink()]
            yield from (Path(folder) / f for f in files if f.endswith(".py"))


def receiver_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def log_calls() -> Iterator[tuple[str, ast.Call]]:
    for path in python_files():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in LEVELS
                and RECEIVER.search(receiver_name(node.func.value) or "")
            ):
                yield f"{path.relative_to(ROOT)}:{node.lineno}", node


def test_every_log_call_names_a_constant_event_with_keyword_fields() -> None:
    calls = list(log_calls())
    assert len(calls) > 50, f"the scan found only {len(calls)} log calls"
    problems = []
    for where, call in calls:
        first = call.args[0] if call.args else None
        if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
            problems.append(f"{where}: the event is not a string literal: {ast.unparse(call)}")
            continue
        if not EVENT.fullmatch(first.value):
            problems.append(f"{where}: event {first.value!r} is not like `gateway.redis.up`")
        if len(call.args) > 1:
            problems.append(f"{where}: positional arguments (values go in keyword fields)")
        for keyword in call.keywords:
            if keyword.arg in RESERVED:
                problems.append(f"{where}: field {keyword.arg!r} clashes with LogRecord")
            if keyword.arg in SYNONYMS:
                problems.append(f"{where}: field {keyword.arg!r}: use {SYNONYMS[keyword.arg]}")
    assert not problems, "\n".join(problems)


def test_every_module_logs_through_shared_logs() -> None:
    """No stdlib `logging.getLogger` (its records would carry formatted messages, not
    events) and no `structlog.get_logger` around shared.logs's defaults."""
    direct = []
    for path in python_files():
        if path == ROOT / "shared" / "logs.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "getLogger":
                direct.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "get_logger"
                and receiver_name(node.value) == "structlog"
            ):
                direct.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not direct, direct
