"""The `oddstream` command, run as real subprocesses against the test Redis.

Covers `--help`, settings errors at start-up, `ingest` (file and stdin), `simulate`, a
gateway and a worker as separate processes with graceful SIGTERM, and `oddstream dev` with its
own embedded Redis and graceful SIGINT. The last two tests pin down defects these scenarios
exposed: the worker's trim racing its own acks, and processes that miss their SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, cast

import aiohttp
import orjson
import pytest
from redis.asyncio import Redis

from oddstream.embedded import EmbeddedRedis, free_port
from oddstream.shared.events import SCHEMA_STAMP, EventKind
from oddstream.shared.keys import Keys
from oddstream.shared.settings import SettingsError, load_settings
from oddstream.shared.streams import EVENT_FIELD, STAMP_FIELD
from tests.harness import TEST_PARTITIONS, TEST_SHARDS, Client, wait_until, workers_synced

ROOT = Path(__file__).resolve().parents[1]
CLI = (sys.executable, "-m", "oddstream.cli")

#: Variables of the process environment that would change the settings under test.
_SETTING_PREFIXES = ("ODDSTREAM_", "WEBSOCKET_")
_SETTING_NAMES = frozenset({"REDIS_URL", "JWT_SECRET"})
#: Not a setting: where to find redis-server (oddstream.embedded); kept for `dev`.
_KEEP = frozenset({"ODDSTREAM_REDIS_SERVER"})


def cli_env(redis_url: str | None, prefix: str | None = None, **extra: str) -> dict[str, str]:
    """A copy of os.environ without stray settings, pointed at the test Redis and prefix."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name in _KEEP or (name not in _SETTING_NAMES and not name.startswith(_SETTING_PREFIXES))
    }
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
    )
    env["PYTHONUNBUFFERED"] = "1"
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    if prefix is not None:
        env["ODDSTREAM_REDIS_PREFIX"] = prefix
        env["ODDSTREAM_PARTITIONS"] = str(TEST_PARTITIONS)
        env["ODDSTREAM_SHARDS"] = str(TEST_SHARDS)
    env.update(extra)
    return env


def run_cli_sync(
    *args: str, env: Mapping[str, str], cwd: Path, timeout: float = 20.0
) -> subprocess.CompletedProcess[str]:
    """Run to completion (subprocess.run kills the child itself on timeout)."""
    return subprocess.run(
        [*CLI, *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


async def run_cli(
    *args: str,
    env: Mapping[str, str],
    cwd: Path,
    stdin: bytes | None = None,
    limit: float = 20.0,
) -> tuple[int, str, str]:
    """Run to completion; returns (exit status, stdout, stderr). Killed if it overruns."""
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        *args,
        env=dict(env),
        cwd=cwd,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), limit)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _children(pid: int) -> list[int]:
    """Direct children of `pid` (Linux /proc; empty elsewhere)."""
    pids: list[int] = []
    for path in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError, ValueError):
            pids += [int(p) for p in path.read_text().split()]
    return pids


class CliProcess:
    """A long-running `oddstream` subprocess; its stderr is collected line by line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._new = asyncio.Event()
        assert proc.stderr is not None
        self._reader = asyncio.create_task(self._read(proc.stderr))

    @classmethod
    async def start(cls, *args: str, env: Mapping[str, str], cwd: Path) -> CliProcess:
        proc = await asyncio.create_subprocess_exec(
            *CLI,
            *args,
            env=dict(env),
            cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    async def _read(self, stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))
            self._new.set()
        self._new.set()

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)

    async def wait_for_line(self, needle: str, within: float) -> str:
        """The first stderr line containing `needle`, waiting up to `within` seconds."""
        deadline = time.monotonic() + within
        while True:
            for line in self.lines:
                if needle in line:
                    return line
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._reader.done():
                raise AssertionError(
                    f"no stderr line with {needle!r} within {within}s "
                    f"(exit={self.proc.returncode}); stderr:\n{self.stderr}"
                )
            self._new.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new.wait(), remaining)

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    async def exit_status(self, within: float) -> int:
        try:
            status = await asyncio.wait_for(self.proc.wait(), within)
        except TimeoutError:
            raise AssertionError(
                f"process still running {within}s after the signal; stderr:\n{self.stderr}"
            ) from None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._reader, 2)
        return status

    async def kill(self) -> None:
        """Make sure it (and any child it left, e.g. an embedded redis-server) is gone."""
        if self.proc.returncode is None:
            orphans = _children(self.proc.pid)
            self.proc.kill()
            await self.proc.wait()
            for pid in orphans:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGTERM)
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@contextlib.asynccontextmanager
async def cli_process(*args: str, env: Mapping[str, str], cwd: Path) -> AsyncIterator[CliProcess]:
    proc = await CliProcess.start(*args, env=env, cwd=cwd)
    try:
        yield proc
    finally:
        await proc.kill()


def one_line(text: str) -> str:
    return " ".join(text.split())


def event_line(**fields: Any) -> str:
    return orjson.dumps(fields).decode()


async def stream_events(redis: Redis, keys: Keys, kind: EventKind) -> list[dict[str, Any]]:
    """The events of one kind in the ingest partitions, oldest first within a partition (the
    order across partitions is not defined); each entry must hold only the event and the
    Ingester's schema stamp."""
    events = []
    for stream in keys.ingest_streams:
        entries = cast("list[tuple[bytes, dict[bytes, bytes]]]", await redis.xrange(stream))
        for _entry_id, fields in entries:
            assert fields.keys() == {EVENT_FIELD, STAMP_FIELD}, fields
            assert fields[STAMP_FIELD] == SCHEMA_STAMP
            event = orjson.loads(fields[EVENT_FIELD])
            if event["kind"] == kind.value:
                events.append(event)
    return events


async def stream_lengths(redis: Redis, keys: Keys) -> dict[EventKind, int]:
    counts = dict.fromkeys(EventKind, 0)
    for stream in keys.ingest_streams:
        for _entry_id, fields in await redis.xrange(stream):
            counts[EventKind(orjson.loads(fields[EVENT_FIELD])["kind"])] += 1
    return counts


async def http_json(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    timeout = aiohttp.ClientTimeout(total=3)
    async with session.get(url, timeout=timeout, headers=headers) as response:
        return response.status, await response.json()


def port_accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A clean working directory, so no stray `.env` changes the settings under test."""
    path = tmp_path / "cwd"
    path.mkdir()
    return path


@pytest.fixture
def clean_environ(monkeypatch: pytest.MonkeyPatch, workdir: Path) -> None:
    """In-process settings tests: no stray settings variables and no `.env`."""
    for name in list(os.environ):
        if name in _SETTING_NAMES or (name.startswith(_SETTING_PREFIXES) and name not in _KEEP):
            monkeypatch.delenv(name)
    monkeypatch.chdir(workdir)


# --- 1. --help ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "purpose"),
    [
        ((), "Real-time WebSocket gateway for live sports-betting data"),
        (("gateway",), "Serve WebSockets (/ws/v2/...) and the management endpoints"),
        (("worker",), "match events to rooms and deliver them to the gateways"),
        (("ingest",), "Validate JSON-lines events and append them to the ingest streams"),
        (("simulate",), "Publish simulated MLB/NBA/NFL/NHL odds"),
        (("dev",), "an embedded Redis (when REDIS_URL is unset)"),
    ],
    ids=["top", "gateway", "worker", "ingest", "simulate", "dev"],
)
def test_help(command: tuple[str, ...], purpose: str, workdir: Path) -> None:
    result = run_cli_sync(*command, "--help", env=cli_env(None), cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    text = one_line(result.stdout)
    assert text.startswith(f"usage: oddstream {' '.join(command)}".rstrip()), text
    assert purpose in text
    if not command:
        for sub in ("gateway", "worker", "ingest", "simulate", "dev"):
            assert re.search(rf"\b{sub}\b", text), sub
    if command in (("gateway",), ("dev",)):
        assert "--host" in text
        assert "--port" in text
    if command == ("dev",):
        assert "--rate" in text
    if command == ("simulate",):
        for flag in ("--rate", "--duration", "--seed"):
            assert flag in text


def test_no_command_is_a_usage_error(workdir: Path) -> None:
    result = run_cli_sync(env=cli_env(None), cwd=workdir)
    assert result.returncode == 2
    assert "usage: oddstream" in result.stderr
    assert "Traceback" not in result.stderr


# --- 2. bad settings ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("WEBSOCKET_HEARTBEAT_INTERVAL", "abc"),
        ("ODDSTREAM_PORT", "99999"),
        ("WEBSOCKET_MAX_CONNECTIONS", "0"),
        ("WEBSOCKET_CONNECTION_TIMEOUT", "-1"),
        ("ODDSTREAM_LOG_LEVEL", "LOUD"),
        ("ODDSTREAM_REDIS_PREFIX", "has space"),
    ],
)
def test_bad_setting_stops_gateway_with_one_line(
    variable: str, value: str, redis_server: EmbeddedRedis, workdir: Path
) -> None:
    env = cli_env(redis_server.url, "tbad", **{variable: value})
    # --port would override ODDSTREAM_PORT; elsewhere it keeps a wrongly started gateway off 8000.
    port = () if variable == "ODDSTREAM_PORT" else ("--port", str(free_port()))
    result = run_cli_sync("gateway", *port, env=env, cwd=workdir, timeout=10)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("oddstream: invalid setting ")
    assert variable in lines[0]
    assert value in lines[0]


def cluster_node() -> EmbeddedRedis:
    """A real Redis Cluster node (`--cluster-enabled yes`, no slots assigned), not started,
    on a free port whose cluster bus port (port + 10000) is a valid port too."""
    while (port := free_port()) >= 55536:
        pass
    return EmbeddedRedis(
        port=port, extra_args=["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
    )


@pytest.mark.parametrize("command", ["gateway", "worker"])
def test_a_redis_cluster_that_is_not_ok_stops_start_up_with_one_line(
    command: str, workdir: Path
) -> None:
    """A REDIS_URL naming a node of a cluster that is not `ok` (here: a real
    `redis-server --cluster-enabled yes` with no slots assigned, `cluster_state:fail`) is
    refused at start with one line naming the setting (a worker, which waits for a Redis that
    is down, does not wait for this: the cluster answers, and says it cannot serve)."""
    with cluster_node() as node:
        env = cli_env(node.url, "tcl")
        args = ("--port", str(free_port())) if command == "gateway" else ()
        result = run_cli_sync(command, *args, env=env, cwd=workdir, timeout=15)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("oddstream: REDIS_URL redis://127.0.0.1:")
    assert "is a Redis Cluster node whose cluster is not ok (cluster_state:fail)" in lines[0]


def test_bad_port_flag_stops_gateway_with_one_line(workdir: Path) -> None:
    result = run_cli_sync("gateway", "--port", "70000", env=cli_env(None), cwd=workdir)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "70000" in lines[0]
    assert "--port" in lines[0]  # names the flag the user typed, not the variable


@pytest.mark.parametrize("command", ["dev", "simulate"])
@pytest.mark.parametrize("rate", ["0", "-5", "nan", "fast"])
def test_a_rate_that_is_no_feed_is_refused_before_anything_starts(
    command: str, rate: str, workdir: Path
) -> None:
    """`oddstream dev --rate 0` used to start the gateway and worker, fail inside the
    simulator and drain again without a banner or a clear error."""
    result = run_cli_sync(command, "--rate", rate, env=cli_env(None), cwd=workdir)
    assert result.returncode == 2
    assert "--rate" in result.stderr and rate in result.stderr
    assert "Traceback" not in result.stderr and "gateway." not in result.stderr


def test_ingest_missing_file_is_one_clear_line(workdir: Path) -> None:
    result = run_cli_sync("ingest", "no-such-file.jsonl", env=cli_env(None), cwd=workdir)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "oddstream ingest: cannot read no-such-file.jsonl: No such file or directory"
    ]


def test_two_bad_settings_are_still_one_line(workdir: Path) -> None:
    env = cli_env(None, WEBSOCKET_HEARTBEAT_INTERVAL="abc", WEBSOCKET_MAX_CONNECTIONS="0")
    result = run_cli_sync("worker", env=env, cwd=workdir)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "WEBSOCKET_HEARTBEAT_INTERVAL" in lines[0]
    assert "WEBSOCKET_MAX_CONNECTIONS" in lines[0]


@pytest.mark.usefixtures("clean_environ")
@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("WEBSOCKET_HEARTBEAT_INTERVAL", "abc"),
        ("WEBSOCKET_HEARTBEAT_INTERVAL", "0"),
        ("ODDSTREAM_PORT", "99999"),
        ("ODDSTREAM_PORT", "-1"),
        ("WEBSOCKET_MAX_CONNECTIONS", "0"),
        ("ODDSTREAM_WORKER_BLOCK_MS", "5000"),
    ],
)
def test_load_settings_raises_settings_error(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "\n" not in message
    assert variable in message
    assert repr(value) in message


@pytest.mark.usefixtures("clean_environ")
def test_load_settings_reads_environment_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBSOCKET_HEARTBEAT_INTERVAL", "2.5")
    monkeypatch.setenv("WEBSOCKET_MAX_CONNECTIONS", "7")
    monkeypatch.setenv("ODDSTREAM_PORT", "9001")
    settings = load_settings(host="0.0.0.0", port=None)
    assert settings.heartbeat_interval == 2.5
    assert settings.max_connections == 7
    assert settings.port == 9001  # a None override leaves the environment's value
    assert settings.host == "0.0.0.0"
    assert load_settings(port=0).port == 0
    with pytest.raises(SettingsError, match="ODDSTREAM_PORT=70000"):
        load_settings(port=70000)


# --- 3. ingest ------------------------------------------------------------------------------

GOOD_ODDS = {
    "kind": "odds",
    "sport": "mlb",
    "game_id": 4321,
    "sportsbook": "DraftKings",
    "market": "moneyline",
    "home_price": -120,
    "away_price": 105,
}
GOOD_PREDICTION = {"kind": "predictions", "sport": "NBA", "game_id": "N7", "player": "Luka"}
GOOD_NBA_ODDS = {
    "kind": "odds",
    "sport": "NBA",
    "game_id": "N7",
    "sportsbook": "FanDuel",
    "market": "total",
    "line": 226.5,
}
GOOD_ALERT = {"kind": "alerts", "message": "Rain delay at Fenway", "level": "warning"}

INGEST_LINES = [
    event_line(**GOOD_ODDS),  # 1 good
    '{"kind": "odds", "sport": "MLB",',  # 2 malformed JSON
    event_line(**{k: v for k, v in GOOD_ODDS.items() if k != "game_id"}),  # 3 missing field
    event_line(kind="weather", sport="MLB", game_id="G1"),  # 4 unknown kind
    "",  # 5 blank: ignored
    event_line(**GOOD_PREDICTION),  # 6 good
    "   ",  # 7 whitespace only: ignored
    event_line(**GOOD_NBA_ODDS),  # 8 good
    event_line(**GOOD_ALERT),  # 9 good
]


def _skipped(stderr: str) -> dict[int, str]:
    return {
        int(m[1]): m[2] for m in re.finditer(r"^line (\d+): skipped: (.*)$", stderr, re.MULTILINE)
    }


async def test_ingest_file_reports_bad_lines_and_lands_good_events(
    redis_server: EmbeddedRedis, redis_client: Redis, keys: Keys, prefix: str, workdir: Path
) -> None:
    source = workdir / "events.jsonl"
    source.write_text("\n".join(INGEST_LINES), encoding="utf-8")  # no final newline
    status, out, err = await run_cli(
        "ingest", str(source), env=cli_env(redis_server.url, prefix), cwd=workdir
    )
    assert status == 1, err
    assert out == ""
    skipped = _skipped(err)
    assert set(skipped) == {2, 3, 4}, err
    assert "not valid JSON" in skipped[2]
    assert "game_id" in skipped[3]
    assert "weather" in skipped[4]
    assert "ingested 4 events, skipped 3 lines" in err
    assert "Traceback" not in err

    assert await stream_lengths(redis_client, keys) == {
        EventKind.ODDS: 2,
        EventKind.PREDICTIONS: 1,
        EventKind.ARBITRAGE: 0,
        EventKind.ANALYTICS: 0,
        EventKind.ALERTS: 1,
        EventKind.PORTFOLIO: 0,
    }
    odds = await stream_events(redis_client, keys, EventKind.ODDS)
    # Normalised: sport upper-cased, game id a string, prices in every format (shared.odds).
    prices = {"home": {"american": -120, "decimal": 1.833, "fractional": "5/6"},
              "away": {"american": 105, "decimal": 2.05, "fractional": "21/20"}}  # fmt: skip
    expected = [{**GOOD_ODDS, "sport": "MLB", "game_id": "4321", "prices": prices}, GOOD_NBA_ODDS]
    assert sorted(odds, key=orjson.dumps) == sorted(expected, key=orjson.dumps)
    assert await stream_events(redis_client, keys, EventKind.PREDICTIONS) == [GOOD_PREDICTION]
    assert await stream_events(redis_client, keys, EventKind.ALERTS) == [
        {**GOOD_ALERT, "sport": None}
    ]
    # Nothing outside this test's prefix was written.
    assert await redis_client.exists(*Keys("oddstream").ingest_streams) == 0


@pytest.mark.parametrize("args", [("ingest", "-"), ("ingest",)], ids=["dash", "default"])
async def test_ingest_stdin(
    args: tuple[str, ...],
    redis_server: EmbeddedRedis,
    redis_client: Redis,
    keys: Keys,
    prefix: str,
    workdir: Path,
) -> None:
    portfolio = {"kind": "portfolio", "user": "alice", "balance": 1250.5}
    data = f"{event_line(**GOOD_NBA_ODDS)}\n\n{event_line(**portfolio)}\n".encode()
    status, _, err = await run_cli(
        *args, env=cli_env(redis_server.url, prefix), cwd=workdir, stdin=data
    )
    assert status == 0, err
    assert "ingested 2 events, skipped 0 lines" in err
    assert _skipped(err) == {}
    assert await stream_events(redis_client, keys, EventKind.ODDS) == [GOOD_NBA_ODDS]
    assert await stream_events(redis_client, keys, EventKind.PORTFOLIO) == [portfolio]


async def test_ingest_stdin_bad_line_numbers(
    redis_server: EmbeddedRedis, redis_client: Redis, keys: Keys, prefix: str, workdir: Path
) -> None:
    data = ("\n".join(INGEST_LINES) + "\n").encode()
    status, _, err = await run_cli(
        "ingest", "-", env=cli_env(redis_server.url, prefix), cwd=workdir, stdin=data
    )
    assert status == 1
    assert set(_skipped(err)) == {2, 3, 4}, err
    assert sum((await stream_lengths(redis_client, keys)).values()) == 4


# --- 4. simulate ----------------------------------------------------------------------------


async def test_simulate_publishes_into_redis(
    redis_server: EmbeddedRedis, redis_client: Redis, keys: Keys, prefix: str, workdir: Path
) -> None:
    started = time.monotonic()
    status, _, err = await run_cli(
        "simulate", "--duration", "1", "--rate", "100", "--seed", "1",
        env=cli_env(redis_server.url, prefix), cwd=workdir,
    )  # fmt: skip
    assert status == 0, err
    assert time.monotonic() - started < 15
    match = re.search(r"published (\d+) events", err)
    assert match, err
    published = int(match[1])
    assert 50 <= published <= 150, published
    lengths = await stream_lengths(redis_client, keys)
    assert sum(lengths.values()) == published  # every reported event landed
    assert lengths[EventKind.ODDS] > 0
    odds = await stream_events(redis_client, keys, EventKind.ODDS)
    assert {event["sport"] for event in odds} <= {"MLB", "NBA", "NFL", "NHL"}


# --- 5. gateway + worker --------------------------------------------------------------------

FAST = {
    "ODDSTREAM_WORKER_BLOCK_MS": "200",
    "ODDSTREAM_WORKER_HEARTBEAT": "0.2",
    "ODDSTREAM_SHUTDOWN_GRACE": "2",
}


@pytest.mark.slow
async def test_gateway_and_worker_processes_deliver_and_stop_cleanly(
    redis_server: EmbeddedRedis, redis_client: Redis, keys: Keys, prefix: str, workdir: Path
) -> None:
    port = free_port()
    env = cli_env(redis_server.url, prefix, **FAST)
    http = f"http://127.0.0.1:{port}"
    async with (
        cli_process("gateway", "--port", str(port), env=env, cwd=workdir) as gateway,
        cli_process("worker", "--id", "cli-worker", env=env, cwd=workdir) as worker,
        aiohttp.ClientSession() as session,
    ):

        async def healthy() -> bool:
            if gateway.proc.returncode is not None:
                raise AssertionError(f"gateway exited early:\n{gateway.stderr}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                status, body = await http_json(session, f"{http}/healthz")
                return status == 200 and body == {"status": "ok"}
            return False

        await wait_until(healthy, timeout=15, interval=0.1, message="gateway /healthz")
        # Production (the default) logs JSON lines: the event and its fields.
        listening = orjson.loads(await gateway.wait_for_line('"gateway.listening"', 5))
        assert (listening["event"], listening["port"]) == ("gateway.listening", port)
        await worker.wait_for_line("worker.started", 10)
        assert await redis_client.zcard(keys.gateways) == 1

        client = await Client.connect(f"ws://127.0.0.1:{port}/ws/v2/connect")
        try:
            confirmed = await client.subscribe("odds_updates", sport="MLB")
            assert confirmed["data"]["filters"] == {"sport": ["MLB"]}
            await wait_until(
                lambda: workers_synced(redis_client, keys), message="worker knows the room"
            )
            mlb = {**GOOD_ODDS, "game_id": "CLI-1", "home_price": -131}
            data = f"{event_line(**GOOD_NBA_ODDS)}\n{event_line(**mlb)}\n".encode()
            status, _, err = await run_cli("ingest", "-", env=env, cwd=workdir, stdin=data)
            assert status == 0, err
            update = await client.next_of("odds_update", timeout=10)
            assert update["data"]["sport"] == "MLB"
            assert update["data"]["game_id"] == "CLI-1"
            assert update["data"]["home_price"] == -131
            assert update["rooms"] == [confirmed["data"]["room"]]
            await asyncio.sleep(0.3)  # the NBA event, ingested first, must not follow
            assert [f["data"]["game_id"] for f in client.of("odds_update")] == ["CLI-1"]

            gateway.signal(signal.SIGTERM)
            assert await gateway.exit_status(8) == 0
            # Deregistered on the way out (the 5 s TTL reaper has not had time to act).
            assert await redis_client.zcard(keys.gateways) == 0
            gateway_id = client.of("welcome")[0]["data"]["gateway"]
            assert await redis_client.exists(keys.gateway_info(gateway_id)) == 0
            await wait_until(lambda: client.closed_code is not None, timeout=3, message="close")
            assert client.closed_code == 1001
        finally:
            await client.close()

        worker.signal(signal.SIGTERM)
        assert await worker.exit_status(8) == 0
        assert await redis_client.zcard(keys.workers) == 0
        assert "Traceback" not in gateway.stderr, gateway.stderr
        assert "Traceback" not in worker.stderr, worker.stderr


# --- 6. dev ---------------------------------------------------------------------------------


@pytest.mark.slow
async def test_dev_runs_everything_and_stops_on_sigint(prefix: str, workdir: Path) -> None:
    port = free_port()
    env = cli_env(None, prefix)
    assert "REDIS_URL" not in env
    async with (
        cli_process("dev", "--port", str(port), "--rate", "100", env=env, cwd=workdir) as dev,
        aiohttp.ClientSession() as session,
    ):
        await dev.wait_for_line("/ws/v2/connect", 20)
        banner = dev.stderr
        assert f"ws://127.0.0.1:{port}/ws/v2/connect" in banner
        redis_match = re.search(r"redis://127\.0\.0\.1:(\d+)/0 \(embedded", banner)
        assert redis_match, banner
        redis_port = int(redis_match[1])
        token_line = await dev.wait_for_line("Dev token", 5)
        token = token_line.split()[-1]
        assert token.count(".") == 2, token_line  # a JWT
        admin_line = await dev.wait_for_line("Admin token", 5)
        admin = {"Authorization": f"Bearer {admin_line.split()[-1]}"}

        # The portfolio room of the dev user, through the printed token.
        owner = await Client.connect(f"ws://127.0.0.1:{port}/ws/v2/connect?token={token}")
        odds = await Client.connect(f"ws://127.0.0.1:{port}/ws/v2/odds?sport=MLB")
        try:
            welcome = owner.of("welcome")[0]
            assert welcome["data"]["user"] == "demo"
            confirmed = await owner.subscribe("portfolio")
            assert confirmed["type"] == "subscription_confirmed"

            update = await odds.next_of("odds_update", timeout=10)
            assert update["data"]["sport"] == "MLB"
            assert all(f["data"]["sport"] == "MLB" for f in odds.of("odds_update"))

            async def one_worker() -> bool:
                status, body = await http_json(
                    session, f"http://127.0.0.1:{port}/ws/v2/status", admin
                )
                return (
                    status == 200
                    and body["workers"]["alive"] == 1
                    and body["gateways"]["alive"] == 1
                )

            await wait_until(one_worker, timeout=5, interval=0.2, message="status: 1 worker")

            portfolio = await owner.next_of("portfolio_update", timeout=10)
            assert portfolio["data"]["user"] == "demo"
        finally:
            await owner.close()
            await odds.close()

        assert port_accepts(redis_port)
        dev.signal(signal.SIGINT)
        assert await dev.exit_status(10) == 0
        assert "dev.stopped" in dev.stderr
        assert "Traceback" not in dev.stderr, dev.stderr
        assert not port_accepts(redis_port), "embedded redis-server outlived `oddstream dev`"
        assert not port_accepts(port)


@pytest.mark.slow
async def test_many_processes_all_stop_promptly_on_sigterm(
    redis_server: EmbeddedRedis, redis_client: Redis, keys: Keys, prefix: str, workdir: Path
) -> None:
    """Every gateway and worker exits 0 within the grace period on SIGTERM, whatever its
    background loops were doing at that moment (several at once make a hang very likely
    to show if any loop can miss its cancellation)."""
    beats = {"ODDSTREAM_WORKER_HEARTBEAT": "0.05", "ODDSTREAM_GATEWAY_HEARTBEAT": "0.05"}
    env = cli_env(redis_server.url, prefix, **{**FAST, **beats})
    commands = [("worker",)] * 4 + [("gateway", "--port", str(free_port())) for _ in range(2)]
    async with contextlib.AsyncExitStack() as stack:
        procs = [
            await stack.enter_async_context(cli_process(*command, env=env, cwd=workdir))
            for command in commands
        ]
        for proc, command in zip(procs, commands, strict=True):
            await proc.wait_for_line(f"{command[0]}.started", 15)
        await wait_until(
            lambda: workers_synced(redis_client, keys, expected_workers=4), message="4 workers"
        )
        await asyncio.sleep(0.5)
        for proc in procs:
            proc.signal(signal.SIGTERM)
        # shutdown_grace is 2 s; allow start-up noise on a busy machine on top.
        results = await asyncio.gather(
            *(proc.exit_status(8) for proc in procs), return_exceptions=True
        )
        outcome = [
            (command[0], "hung" if isinstance(result, AssertionError) else result)
            for command, result in zip(commands, results, strict=True)
        ]
        assert all(status == 0 for _, status in outcome), f"exit statuses: {outcome}"
        assert await redis_client.zcard(keys.workers) == 0
        assert await redis_client.zcard(keys.gateways) == 0
