"""Production defaults: origins and JWT secrets, through real sockets, processes and Chromium.

- WebSocket upgrades and CORS: the gateway's own origin by default (its `Host`, or what a
  trusted proxy forwarded), more only when `ODDSTREAM_ALLOWED_ORIGINS` lists them, any with an
  explicit `*`; requests without an Origin header (non-browsers) always.
- `oddstream dev`: its dashboard connects from http://127.0.0.1:PORT and http://localhost:PORT,
  a page of another origin is refused unless listed (the dev runner does not widen the
  default).
- `oddstream gateway` and gunicorn refuse to start in production with a weak JWT_SECRET, or
  none when tokens are required, with one line naming the setting; a strong one starts.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import expect

from oddstream.embedded import free_port
from oddstream.gateway.auth import issue_token, secret_weakness
from oddstream.shared.settings import Settings, SettingsError, load_settings
from tests.browser import chromium, open_page
from tests.harness import Client, RunningGateway, running_gateway, wait_healthy, wait_until
from tests.test_cli import cli_env, cli_process, cluster_node, run_cli_sync

ROOT = Path(__file__).resolve().parents[1]
EVIL = "https://evil.test"
APP = "https://app.oddstream.test"
STRONG = secrets.token_hex(32)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A clean working directory, so no stray `.env` changes the settings under test."""
    path = tmp_path / "cwd"
    path.mkdir()
    return path


async def upgrade(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """Try a WebSocket upgrade: (101, {}) when accepted, else the refusal's status and body."""
    async with aiohttp.ClientSession() as session:
        try:
            ws = await session.ws_connect(url, headers=headers or {})
        except aiohttp.WSServerHandshakeError as exc:
            refused = exc.status
        else:
            welcome = await ws.receive_json(timeout=5)
            assert welcome["type"] == "welcome"
            await ws.close()
            return 101, {}
        async with session.get(url.replace("ws://", "http://"), headers=headers) as resp:
            assert resp.status == refused
            return refused, await resp.json()


async def cors(gw: RunningGateway, origin: str, host: str | None = None) -> tuple[str | None, int]:
    """(Access-Control-Allow-Origin of a GET, status of a preflight) for this Origin."""
    headers = {"Origin": origin, **({"Host": host} if host else {})}
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{gw.http}/ws/v2/status", headers=headers) as r:
            allow = r.headers.get("Access-Control-Allow-Origin")
        preflight = {**headers, "Access-Control-Request-Method": "POST"}
        async with s.options(f"{gw.http}/ws/v2/broadcast/test", headers=preflight) as r:
            return allow, r.status


def assert_origin_refused(status: int, body: dict[str, Any], origin: str) -> None:
    """Today's clear refusal: 403 `origin_not_allowed`, naming the origin, with the hint."""
    assert (status, body["code"]) == (403, "origin_not_allowed"), body
    assert body["error"].startswith(f"Origin {origin!r} may not connect."), body
    assert body["hint"] == "Open the page from an origin the gateway allows."


# --- origins -----------------------------------------------------------------------------------


def test_the_default_is_the_own_origin_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ODDSTREAM_ALLOWED_ORIGINS", raising=False)
    assert Settings().allowed_origins == []
    assert "own origin" in (Settings.model_fields["allowed_origins"].description or "")


async def test_by_default_a_foreign_origin_is_refused_and_the_own_origin_accepted(
    settings: Settings,
) -> None:
    assert settings.allowed_origins == []
    async with running_gateway(settings) as gw:
        url = f"{gw.ws}/ws/v2/connect"
        status, body = await upgrade(url, {"Origin": EVIL})
        assert_origin_refused(status, body, EVIL)
        # Its own origin: the scheme and Host the request was made to (port included).
        assert (await upgrade(url, {"Origin": gw.http}))[0] == 101
        assert (await upgrade(url, {"Origin": gw.http.upper() + "/"}))[0] == 101
        # No Origin header: not a browser, not cross-site.
        assert (await upgrade(url))[0] == 101
        # Same host, another port or scheme, or another name for it: other origins.
        for other in (
            f"http://127.0.0.1:{gw.port + 1}",
            f"https://127.0.0.1:{gw.port}",
            f"http://localhost:{gw.port}",
            "null",
        ):
            status, body = await upgrade(url, {"Origin": other})
            assert_origin_refused(status, body, other)
        # Reached as localhost, the own origin is http://localhost:PORT.
        local = f"ws://localhost:{gw.port}/ws/v2/odds?sport=MLB"
        assert (await upgrade(local, {"Origin": f"http://localhost:{gw.port}"}))[0] == 101
        status, body = await upgrade(local, {"Origin": gw.http})
        assert_origin_refused(status, body, gw.http)

        # CORS for the HTTP endpoints follows the same rule.
        assert await cors(gw, gw.http) == (gw.http, 204)
        assert await cors(gw, EVIL) == (None, 403)


async def test_star_is_an_explicit_opt_in_for_any_origin(settings: Settings) -> None:
    async with running_gateway(settings.model_copy(update={"allowed_origins": ["*"]})) as gw:
        assert (await upgrade(f"{gw.ws}/ws/v2/connect", {"Origin": EVIL}))[0] == 101
        assert (await upgrade(f"{gw.ws}/ws/v2/connect", {"Origin": gw.http}))[0] == 101
        assert await cors(gw, EVIL) == (EVIL, 204)


async def test_an_explicit_list_adds_origins_to_the_own_one(settings: Settings) -> None:
    listed = settings.model_copy(update={"allowed_origins": [APP, "http://localhost:5173"]})
    async with running_gateway(listed) as gw:
        url = f"{gw.ws}/ws/v2/connect"
        for origin in (APP, "https://APP.oddstream.test:443", "http://localhost:5173", gw.http):
            assert (await upgrade(url, {"Origin": origin}))[0] == 101, origin
        for origin in (EVIL, "http://app.oddstream.test", "http://localhost:5174"):
            status, body = await upgrade(url, {"Origin": origin})
            assert_origin_refused(status, body, origin)
        assert (await upgrade(url))[0] == 101
        assert await cors(gw, APP) == (APP, 204)
        assert await cors(gw, EVIL) == (None, 403)


async def test_forwarded_host_and_proto_count_only_from_a_trusted_proxy(
    settings: Settings,
) -> None:
    public = "https://odds.example.com"
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "odds.example.com"}
    async with running_gateway(settings) as gw:
        # Not a trusted proxy: the headers are ignored, the own origin is the Host's.
        status, body = await upgrade(f"{gw.ws}/ws/v2/connect", {**forwarded, "Origin": public})
        assert_origin_refused(status, body, public)
    proxied = settings.model_copy(update={"trusted_proxies": ["127.0.0.1/32", "::1/128"]})
    async with running_gateway(proxied) as gw:
        url = f"{gw.ws}/ws/v2/connect"
        assert (await upgrade(url, {**forwarded, "Origin": public}))[0] == 101
        # A chain of proxies: the first entry is what the one nearest the browser saw.
        chain = {
            "X-Forwarded-Proto": "https, http",
            "X-Forwarded-Host": "odds.example.com, gateway.internal:8000",
        }
        assert (await upgrade(url, {**chain, "Origin": public}))[0] == 101
        # The forwarded origin replaces the Host's: the proxy's own address is not a page.
        status, body = await upgrade(url, {**forwarded, "Origin": gw.http})
        assert_origin_refused(status, body, gw.http)
        status, body = await upgrade(url, {**forwarded, "Origin": "http://odds.example.com"})
        assert_origin_refused(status, body, "http://odds.example.com")
        # Only the host forwarded: the scheme is the connection's.
        only_host = {"X-Forwarded-Host": "odds.example.com:8080"}
        assert (await upgrade(url, {**only_host, "Origin": "http://odds.example.com:8080"}))[
            0
        ] == 101


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", []),
        ("*", ["*"]),
        ("https://a.test, http://localhost:5173", ["https://a.test", "http://localhost:5173"]),
        ('["https://a.test/"]', ["https://a.test/"]),
    ],
)
def test_allowed_origins_are_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: list[str]
) -> None:
    monkeypatch.setenv("ODDSTREAM_ALLOWED_ORIGINS", value)
    assert load_settings().allowed_origins == expected


@pytest.mark.parametrize("value", ["app.example.com", "https://a.test/path", "ftp://a.test"])
def test_an_origin_that_no_browser_sends_stops_start_up(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("ODDSTREAM_ALLOWED_ORIGINS", value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"invalid setting ODDSTREAM_ALLOWED_ORIGINS={value!r}"), message
    assert message.endswith(f"(scheme, host, optional port, no path), not {value!r}"), message


# --- oddstream dev: its own dashboard, and nothing else ------------------------------------------


@pytest.mark.slow
async def test_dev_dashboard_connects_from_its_own_origin_and_no_other(
    prefix: str, workdir: Path
) -> None:
    port = free_port()
    # A weak secret: `dev` is development, it starts anyway (a gateway would refuse it). A
    # listed origin (a Vite dev server's) is allowed besides the dashboard's own, nothing else.
    vite = "http://localhost:5173"
    env = cli_env(None, prefix, JWT_SECRET="dev-secret", ODDSTREAM_ALLOWED_ORIGINS=vite)
    async with (
        cli_process("dev", "--port", str(port), "--rate", "60", env=env, cwd=workdir) as dev,
        chromium() as browser,
    ):
        line = await dev.wait_for_line("Dashboard", 30)
        match = re.search(r"(http://127\.0\.0\.1:\d+)/#token=(\S+)", line)
        assert match, line
        base, token = match[1], match[2]
        assert base == f"http://127.0.0.1:{port}"
        await dev.wait_for_line("Press Ctrl-C to stop.", 10)
        assert await _cors_allows(base, EVIL) is None

        for home in (base, f"http://localhost:{port}"):
            page, log = await open_page(browser)
            await page.goto(f"{home}/#token={token}")
            state = page.locator("#status")
            await expect(state).to_have_attribute("data-state", "connected", timeout=15_000)
            await expect(page.locator("#identity")).to_have_text("signed in as demo")
            assert log.errors == [], log.errors
            await page.close()

        # From a page of another origin (the dashboard at localhost connecting to 127.0.0.1,
        # a different host to the browser): the browser sends its Origin, the gateway refuses.
        page, log = await open_page(browser)
        await page.goto(f"http://localhost:{port}/#token={token}")
        before = await _origin_refusals(base)
        outcome = await page.evaluate(_TRY_WEBSOCKET, f"ws://127.0.0.1:{port}/ws/v2/connect")
        assert outcome == "refused"
        await wait_until(
            lambda: _more_refusals(base, before), timeout=5, message="the gateway refused it"
        )
        # The same page to its own origin opens: the browser did not block it itself.
        assert await page.evaluate(_TRY_WEBSOCKET, f"ws://localhost:{port}/ws/v2/connect") == (
            "open"
        )
        # And fetch across origins gets no CORS permission.
        cross = await page.evaluate(
            """async (url) => {
                try { await fetch(url); return "read"; } catch (e) { return "blocked"; }
            }""",
            f"http://127.0.0.1:{port}/ws/v2/status",
        )
        assert cross == "blocked"
        await page.close()

        url = f"ws://127.0.0.1:{port}/ws/v2/connect"
        assert (await upgrade(url, {"Origin": vite}))[0] == 101
        assert await _cors_allows(base, vite) == vite
        status, body = await upgrade(url, {"Origin": "http://127.0.0.1:5173"})
        assert_origin_refused(status, body, "http://127.0.0.1:5173")
        dev.signal(signal.SIGINT)
        assert await dev.exit_status(15) == 0


_TRY_WEBSOCKET = """(url) => new Promise((resolve) => {
    const ws = new WebSocket(url, ["oddstream.v2"]);
    ws.onopen = () => { ws.close(); resolve("open"); };
    ws.onerror = () => resolve("refused");
    setTimeout(() => resolve("timeout"), 5000);
})"""


async def _metrics(base: str) -> str:
    async with aiohttp.ClientSession() as s, s.get(f"{base}/metrics") as r:
        return await r.text()


async def _origin_refusals(base: str) -> float:
    found = re.search(
        r'oddstream_errors_total\{code="origin_not_allowed"\} (\S+)', await _metrics(base)
    )
    return float(found[1]) if found else 0.0


async def _more_refusals(base: str, before: float) -> bool:
    return await _origin_refusals(base) > before


async def _cors_allows(base: str, origin: str) -> str | None:
    headers = {"Origin": origin}
    async with aiohttp.ClientSession() as s, s.get(f"{base}/ws/v2/status", headers=headers) as r:
        return r.headers.get("Access-Control-Allow-Origin")


# --- JWT_SECRET in production --------------------------------------------------------------------


def test_secret_weakness() -> None:
    assert secret_weakness(STRONG) is None
    for weak, why in [
        ("secret", "is a placeholder"),
        ("changeme", "is a placeholder"),
        ("dev-secret", "is a placeholder"),
        ("Dev_Secret", "is a placeholder"),
        ("CHANGE_ME_TO_A_LONG_RANDOM_STRING_IN_PRODUCTION", "is a placeholder"),
        ("your-256-bit-secret", "is a placeholder"),
        ("replace-with-a-long-random-secret", "is a placeholder"),
        ("0123456789abcdef0123456789abcde", "is 31 bytes, fewer than the 32"),
        ("a" * 64, "repeats a few characters"),
        ("secret" * 8, "repeats a few characters"),
    ]:
        found = secret_weakness(weak)
        assert found is not None and found.startswith(why), (weak, found)


REFUSED = [
    ("missing_when_required", {"ODDSTREAM_ALLOW_ANONYMOUS": "false"},
     "oddstream: JWT_SECRET is not set but tokens are required (ODDSTREAM_ALLOW_ANONYMOUS=false)"),
    ("empty_when_required", {"ODDSTREAM_ALLOW_ANONYMOUS": "false", "JWT_SECRET": ""},
     "oddstream: JWT_SECRET is not set but tokens are required"),
    ("placeholder", {"JWT_SECRET": "changeme"}, "oddstream: JWT_SECRET is a placeholder"),
    ("dev_secret_required", {"JWT_SECRET": "dev-secret", "ODDSTREAM_ALLOW_ANONYMOUS": "false"},
     "oddstream: JWT_SECRET is a placeholder"),
    ("short", {"JWT_SECRET": "k3Y-9fQz!x"},
     "oddstream: JWT_SECRET is 10 bytes, fewer than the 32 HS256 needs (RFC 7518 section 3.2)"),
    ("explicit_production", {"JWT_SECRET": "k3Y-9fQz!x", "ODDSTREAM_ENV": "production"},
     "oddstream: JWT_SECRET is 10 bytes"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "extra", "line"), REFUSED, ids=[r[0] for r in REFUSED])
def test_gateway_refuses_a_missing_or_weak_secret_in_production(
    redis_url: str, workdir: Path, name: str, extra: dict[str, str], line: str
) -> None:
    env = cli_env(redis_url, **extra)
    result = run_cli_sync("gateway", "--port", str(free_port()), env=env, cwd=workdir)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(line), lines[0]
    assert "ODDSTREAM_ENV=development" in lines[0]
    secret = extra.get("JWT_SECRET")
    if secret:
        assert secret not in lines[0], "the secret must never be printed"


STARTS = [
    ("strong_secret_tokens_required", {"JWT_SECRET": STRONG, "ODDSTREAM_ALLOW_ANONYMOUS": "false"}),
    ("anonymous_without_secret", {}),
    ("weak_secret_in_development", {"JWT_SECRET": "dev-secret", "ODDSTREAM_ENV": "development"}),
    ("weak_secret_unused_by_rs256", {"JWT_SECRET": "secret", "ODDSTREAM_JWT_ALGORITHMS": "RS256",
                                     "ODDSTREAM_JWT_JWKS_URL": "https://id.example.test/jwks"}),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(("name", "extra"), STARTS, ids=[s[0] for s in STARTS])
async def test_gateway_starts_with_a_strong_secret_or_none_needed(
    redis_url: str, prefix: str, workdir: Path, name: str, extra: dict[str, str]
) -> None:
    port = free_port()
    env = cli_env(redis_url, prefix, **extra)
    async with cli_process("gateway", "--port", str(port), env=env, cwd=workdir) as gateway:
        await gateway.wait_for_line("gateway.listening", 15)
        url = f"ws://127.0.0.1:{port}/ws/v2/connect"
        if name == "strong_secret_tokens_required":
            status, body = await upgrade(url)
            assert (status, body["reason"]) == (401, "token_required")
            client = await Client.connect(f"{url}?token={issue_token(STRONG, 'alice')}")
            assert client.of("welcome")[0]["data"]["user"] == "alice"
            await client.close()
        else:
            assert (await upgrade(url))[0] == 101
        gateway.signal(signal.SIGTERM)
        assert await gateway.exit_status(10) == 0
        assert "Traceback" not in gateway.stderr, gateway.stderr


# --- gunicorn ------------------------------------------------------------------------------------

GUNICORN = (sys.executable, "-m", "gunicorn", "oddstream.gateway.app:gunicorn_app")
WITH_CONFIG = ("-c", str(ROOT / "deploy" / "gunicorn.conf.py"))


def _gunicorn(env: dict[str, str], workdir: Path, log: Any) -> subprocess.Popen[str]:
    """gunicorn with deploy/gunicorn.conf.py, running; its stderr goes to `log`."""
    return subprocess.Popen(
        [*GUNICORN, *WITH_CONFIG], env=env, cwd=workdir, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=log, text=True,
    )  # fmt: skip


def _gunicorn_exit(env: dict[str, str], workdir: Path, *args: str) -> tuple[int, str]:
    """gunicorn run to its exit (it must exit by itself): (status, stderr)."""
    done = subprocess.run(
        [*GUNICORN, *args], env=env, cwd=workdir, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    return done.returncode, done.stderr


@pytest.mark.slow
async def test_gunicorn_refuses_a_weak_secret_and_starts_with_a_strong_one(
    redis_url: str, prefix: str, workdir: Path
) -> None:
    port = free_port()
    base = {
        "ODDSTREAM_HOST": "127.0.0.1",
        "ODDSTREAM_PORT": str(port),
        "ODDSTREAM_GATEWAY_PROCESSES": "1",
        "ODDSTREAM_SHUTDOWN_GRACE": "2",
    }
    weak = cli_env(redis_url, prefix, JWT_SECRET="secret", **base)
    status, err = await asyncio.to_thread(_gunicorn_exit, weak, workdir, *WITH_CONFIG)
    assert status == 2, err
    assert err.strip().splitlines() == [
        "oddstream: JWT_SECRET is a placeholder: use at least 32 random bytes "
        "(e.g. `openssl rand -hex 32`), or set ODDSTREAM_ENV=development outside production"
    ]
    # Without deploy/gunicorn.conf.py the app factory checks too: the worker does not boot.
    bare = (
        "--worker-class",
        "aiohttp.GunicornUVLoopWebWorker",
        "-w",
        "1",
        "-b",
        f"127.0.0.1:{port}",
    )
    status, err = await asyncio.to_thread(_gunicorn_exit, weak, workdir, *bare)
    assert status != 0, err
    assert "JWT_SECRET is a placeholder" in err and "Worker failed to boot" in err, err

    log_path = workdir / "gunicorn.log"
    with log_path.open("w") as log:
        strong = _gunicorn(cli_env(redis_url, prefix, JWT_SECRET=STRONG, **base), workdir, log)
        try:
            await wait_healthy(port, message="gunicorn up")
            token = issue_token(STRONG, "alice")
            client = await Client.connect(f"ws://127.0.0.1:{port}/ws/v2/connect?token={token}")
            assert client.of("welcome")[0]["data"]["user"] == "alice"
            await client.close()
            strong.send_signal(signal.SIGTERM)
            await asyncio.to_thread(strong.wait, 15)
            assert strong.returncode == 0, log_path.read_text()
        finally:
            if strong.poll() is None:
                strong.kill()
                strong.wait()


def test_gunicorn_refuses_a_failed_redis_cluster_with_one_line(prefix: str, workdir: Path) -> None:
    """The production entry point checks REDIS_URL as `oddstream gateway` does: gunicorn with
    deploy/gunicorn.conf.py, pointed at a node of a real Redis Cluster that is not ok (no
    slots assigned), stops before forking."""
    with cluster_node() as node:
        env = cli_env(node.url, prefix, JWT_SECRET=STRONG, ODDSTREAM_HOST="127.0.0.1",
                      ODDSTREAM_PORT=str(free_port()), ODDSTREAM_GATEWAY_PROCESSES="1")  # fmt: skip
        status, err = _gunicorn_exit(env, workdir, *WITH_CONFIG)
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("oddstream: REDIS_URL redis://127.0.0.1:")
    assert "is a Redis Cluster node whose cluster is not ok" in lines[0]


def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2))


@pytest.fixture
def redis_url(settings: Settings) -> str:
    return settings.effective_redis_url
