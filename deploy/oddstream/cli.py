"""The `oddstream` command: gateway, worker, ingest, simulate, feed, dev and listen."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from oddstream.runners import run_gateway, run_worker, stop_on_signals
from oddstream.shared.logs import configure_logging, log_format
from oddstream.shared.settings import Settings, SettingsError, load_settings

__all__ = ["main"]


def _run(coro_factory: Callable[[], Coroutine[Any, Any, int]]) -> int:
    try:
        import uvloop

        return int(uvloop.run(coro_factory()))
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
        return asyncio.run(coro_factory())


# --- subcommands -----------------------------------------------------------------------------


async def _gateway_main(settings: Settings) -> int:
    stop = asyncio.Event()
    stop_on_signals(stop)
    await run_gateway(settings, stop)
    return 0


async def _worker_main(settings: Settings, worker_id: str | None) -> int:
    stop = asyncio.Event()
    stop_on_signals(stop)
    await run_worker(settings, stop, worker_id)
    return 0


def _positive(text: str) -> float:
    """An argparse type: a number above zero (a rate of 0 would be no feed at all)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a number above 0")
    return value


def _print_rejected(number: int, reason: str) -> None:
    print(f"line {number}: skipped: {reason}", file=sys.stderr)


async def _ingest_main(settings: Settings, source: str) -> int:
    from oddstream.shared.ingest import Ingester
    from oddstream.shared.keys import Keys
    from oddstream.shared.redis import create_redis

    redis = create_redis(settings.effective_redis_url)
    try:
        ingester = Ingester(redis, Keys.of(settings))
        if source == "-":
            report = await ingester.ingest_lines(sys.stdin, on_rejected=_print_rejected)
        else:
            try:
                # A local file read line by line; nothing else shares this loop, so no thread.
                handle = Path(source).open(encoding="utf-8")  # noqa: ASYNC230, SIM115
            except OSError as exc:
                print(f"oddstream ingest: cannot read {source}: {exc.strerror}", file=sys.stderr)
                return 2
            with handle:
                report = await ingester.ingest_lines(handle, on_rejected=_print_rejected)
    finally:
        await redis.aclose()
    print(
        f"ingested {report.accepted} events, skipped {len(report.rejected)} lines", file=sys.stderr
    )
    return 1 if report.rejected else 0


async def _simulate_main(
    settings: Settings, rate: float, duration: float | None, seed: int | None
) -> int:
    from oddstream.shared.ingest import Ingester
    from oddstream.shared.keys import Keys
    from oddstream.shared.redis import create_redis
    from oddstream.simulator import Simulator

    stop = asyncio.Event()
    stop_on_signals(stop)
    redis = create_redis(settings.effective_redis_url)
    try:
        published = await Simulator(rate=rate, seed=seed).run(
            Ingester(redis, Keys.of(settings)), stop=stop, duration=duration
        )
    finally:
        await redis.aclose()
    print(f"published {published} events", file=sys.stderr)
    return 0


def _non_negative(text: str) -> float:
    """An argparse type: a number of 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a number of 0 or more")
    return value


def _comma_list(allowed: Sequence[str] | None = None) -> Callable[[str], list[str]]:
    """An argparse type: `a,b,c`, each item one of `allowed` when given."""

    def parse(text: str) -> list[str]:
        items = [item.strip() for item in text.split(",") if item.strip()]
        if not items:
            raise argparse.ArgumentTypeError("give at least one value")
        for item in items:
            if allowed is not None and item not in allowed:
                raise argparse.ArgumentTypeError(
                    f"{item!r} is not ingested; use {', '.join(allowed)}"
                )
            if not item.replace("_", "").isalnum():
                raise argparse.ArgumentTypeError(f"{item!r} is not a provider key")
        return items

    return parse


async def _feed_main(settings: Settings, args: argparse.Namespace) -> int:
    """`oddstream feed the-odds-api`: poll the provider (or read a saved answer) and ingest
    what changed; the API key comes from the environment only."""
    from oddstream.feeds.the_odds_api import KEY_VARIABLE, FeedOptions, run_feed
    from oddstream.shared.ingest import Ingester
    from oddstream.shared.keys import Keys
    from oddstream.shared.redis import create_redis

    key = settings.odds_api_key.get_secret_value() if settings.odds_api_key else None
    if args.from_file is None and not key:
        print(
            f"oddstream feed: set {KEY_VARIABLE} to your The Odds API key (it is never taken "
            "as a flag), or read a saved answer with --from-file FILE",
            file=sys.stderr,
        )
        return 2
    if args.from_file is None and not args.sport:
        print("oddstream feed: --sport is required (e.g. basketball_nba)", file=sys.stderr)
        return 2
    interval = args.interval
    if interval is None and args.from_file is None:
        interval = 60.0
    options = FeedOptions(
        sport=args.sport or "",
        markets=tuple(args.markets),
        regions=tuple(args.regions),
        interval=interval,
        odds_format=args.odds_format or ("auto" if args.from_file else "american"),
        base_url=args.base_url,
        from_file=args.from_file,
        polls=args.polls,
        quota_reserve=args.quota_reserve,
    )
    stop = asyncio.Event()
    stop_on_signals(stop)
    redis = create_redis(settings.effective_redis_url)
    try:
        return await run_feed(options, Ingester(redis, Keys.of(settings)), stop, key=key)
    finally:
        await redis.aclose()


async def _listen_main(args: argparse.Namespace) -> int:
    """Print a subscription's live frames, one JSON line each; state changes go to stderr."""
    import orjson

    from oddstream_client import OddstreamClient, OddstreamError, StateEvent

    filters: dict[str, Any] = {}
    for name in ("sport", "game_id", "player", "sportsbook"):
        values = [v for raw in getattr(args, name) or [] for v in raw.split(",") if v.strip()]
        if values:
            filters[name] = values[0] if len(values) == 1 else values
    if args.min_profit is not None:
        filters["min_profit"] = args.min_profit

    def show(event: StateEvent) -> None:
        print(f"oddstream listen: {event.describe()}", file=sys.stderr, flush=True)

    stop = asyncio.Event()
    stop_on_signals(stop)
    client = OddstreamClient(args.url, token=args.token)
    client.on_state(show)
    received = 0

    async def pump() -> None:
        nonlocal received
        sub = await client.subscribe(args.subscription_type, filters)
        print(f"oddstream listen: subscribed room={sub.room}", file=sys.stderr, flush=True)
        async for frame in sub:
            sys.stdout.write(orjson.dumps(frame).decode() + "\n")
            sys.stdout.flush()
            received += 1
            if args.count is not None and received >= args.count:
                return

    try:
        await client.connect()
        listening = asyncio.create_task(pump())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({listening, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not listening.done():  # Ctrl-C: a clean exit, not a traceback
            listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listening
            return 0
        listening.result()
        return 0
    except OddstreamError as exc:
        print(f"oddstream listen: {exc}", file=sys.stderr)
        return 1
    finally:
        await client.close()


# --- argument parsing ------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oddstream",
        description="Real-time WebSocket gateway for live sports-betting data. "
        "Settings come from the environment (see README, 'Settings').",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    gateway = sub.add_parser(
        "gateway", help="serve WebSockets and the HTTP endpoints",
        description="Serve WebSockets (/ws/v2/...) and the management endpoints.",
    )  # fmt: skip
    gateway.add_argument("--host", help="bind address (ODDSTREAM_HOST, default 127.0.0.1)")
    gateway.add_argument("--port", type=int, help="port (ODDSTREAM_PORT, default 8000)")

    worker = sub.add_parser(
        "worker", help="run a matching worker",
        description="Read the ingest streams as part of the worker group, match events to "
        "rooms and deliver them to the gateways. Run as many as you like.",
    )  # fmt: skip
    worker.add_argument("--id", dest="worker_id", help="consumer name (default host-pid-random)")

    ingest = sub.add_parser(
        "ingest", help="ingest events from JSON lines",
        description="Validate JSON-lines events and append them to the ingest streams. Bad "
        "lines are reported with their number and skipped; exit status 1 if any were.",
    )  # fmt: skip
    ingest.add_argument("source", nargs="?", default="-", help="file of JSON lines, or - (stdin)")

    simulate = sub.add_parser(
        "simulate", help="publish a realistic live demo feed",
        description="Publish simulated MLB/NBA/NFL/NHL odds, predictions, analytics, "
        "alerts and portfolio events through the ingest path (workers detect arbitrage).",
    )  # fmt: skip
    simulate.add_argument("--rate", type=_positive, default=40.0, help="events per second (40)")
    simulate.add_argument("--duration", type=float, help="seconds to run (default: until Ctrl-C)")
    simulate.add_argument("--seed", type=int, help="random seed, for a repeatable feed")

    feed = sub.add_parser(
        "feed", help="ingest an odds provider's feed, only what changed",
        description="Poll an odds provider and ingest only what changed since the last poll "
        "(prices and points that moved, books that appeared, markets pulled: a suspension, "
        "and back: the resume). The Odds API v4: its key comes from ODDS_API_KEY (never a "
        "flag); --from-file reads a saved answer instead. Exit status: 0 ingested, 1 the "
        "last poll failed or skipped malformed events, 2 usage, 3 stopped by the provider "
        "(a refused key, a rejected request, the quota reserve reached).",
    )  # fmt: skip
    feed.add_argument("provider", choices=["the-odds-api"], help="the provider")
    feed.add_argument("--sport", help="the provider's sport key, e.g. basketball_nba")
    feed.add_argument(
        "--markets", type=_comma_list(("h2h", "spreads", "totals")),
        default=["h2h", "spreads", "totals"], help="comma-separated (h2h,spreads,totals)",
    )  # fmt: skip
    feed.add_argument("--regions", type=_comma_list(), default=["us"], help="comma-separated (us)")
    feed.add_argument(
        "--interval", type=_positive,
        help="seconds between polls (60; with --from-file: read the file once, unless given)",
    )  # fmt: skip
    feed.add_argument(
        "--odds-format", choices=["american", "decimal"],
        help="the provider's oddsFormat (american; a file's is guessed from its prices)",
    )  # fmt: skip
    feed.add_argument(
        "--base-url", default="https://api.the-odds-api.com", help="the provider's URL"
    )
    feed.add_argument("--from-file", type=Path, help="a saved answer (JSON) instead of the API")
    feed.add_argument("--polls", type=int, help="stop after N polls (default: until Ctrl-C)")
    feed.add_argument(
        "--quota-reserve", type=int, default=20,
        help="stop when fewer requests are left (20); below 4x that, poll 4x less often",
    )  # fmt: skip

    dev = sub.add_parser(
        "dev", help="run everything locally: Redis, gateway, worker, simulator",
        description="One command for a newcomer: an embedded Redis (when REDIS_URL is unset), "
        "one gateway, one worker and the simulator. Ctrl-C stops it all cleanly.",
    )  # fmt: skip
    dev.add_argument("--host", help="gateway bind address (default 127.0.0.1)")
    dev.add_argument("--port", type=int, help="gateway port (default 8000)")
    dev.add_argument(
        "--rate", type=_positive, default=40.0, help="simulated events per second (40)"
    )
    dev.add_argument(
        "--feed-file", type=Path,
        help="a saved The Odds API answer to show instead of the simulator",
    )  # fmt: skip
    dev.add_argument(
        "--feed-moves", type=_non_negative, default=2.0,
        help="with --feed-file: random price moves per second, some of them suspensions (2; "
        "0: none)",
    )  # fmt: skip
    listen = sub.add_parser(
        "listen", help="print live messages of one subscription",
        description="Connect with the reconnecting client (oddstream_client), subscribe and print "
        "every data message as one JSON line; connection state changes go to stderr.",
    )  # fmt: skip
    listen.add_argument("subscription_type", help="odds_updates, arbitrage, mlb, ...")
    listen.add_argument(
        "--url", default="ws://127.0.0.1:8000/ws/v2/connect", help="gateway WebSocket URL"
    )
    listen.add_argument("--token", help="token (sent as Authorization: Bearer)")
    for flag in ("sport", "game-id", "player", "sportsbook"):
        name = flag.replace("-", "_")
        listen.add_argument(f"--{flag}", action="append", help=f"{name} filter (repeatable)")
    listen.add_argument("--min-profit", type=float, help="min_profit filter (arbitrage)")
    listen.add_argument("--count", type=int, help="exit after N data messages")
    return parser


#: Commands that wait for an unreachable Redis (they retry) instead of stopping.
_WAIT_FOR_REDIS = ("worker", "simulate", "feed")


def _check_redis(command: str, settings: Settings) -> int | None:
    """A Sentinel REDIS_URL is checked before anything starts: an unknown service stops
    every command (2); sentinels that do not answer stop those that would fail anyway (1),
    the others say so in one line and wait, as for a plain Redis that is down."""
    from oddstream.shared.redis import RedisStartError, check_redis_url

    if command == "listen" or (command == "dev" and settings.redis_url is None):
        return None
    try:
        check_redis_url(settings.effective_redis_url, settings.redis_cluster)
    except RedisStartError as exc:
        print(f"oddstream: {exc}", file=sys.stderr, flush=True)
        if exc.exit_status == 2 or command not in _WAIT_FOR_REDIS:
            return exc.exit_status
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides: dict[str, Any] = {}
    if getattr(args, "host", None) is not None:
        overrides["host"] = args.host
    if getattr(args, "port", None) is not None:
        overrides["port"] = args.port
    try:
        settings = load_settings(flags={k: f"--{k}" for k in overrides}, **overrides)
    except SettingsError as exc:
        print(f"oddstream: {exc}", file=sys.stderr)
        return 2
    if (status := _check_redis(args.command, settings)) is not None:
        return status
    # `dev` runs as development (readable lines); ODDSTREAM_LOG_FORMAT overrides either way.
    env = "development" if args.command == "dev" else settings.env
    configure_logging(settings.log_level, log_format(env, settings.log_format))
    with contextlib.suppress(KeyboardInterrupt):
        match args.command:
            case "gateway":
                from oddstream.gateway.auth import check_production_secrets

                try:
                    check_production_secrets(settings)
                except SettingsError as exc:
                    print(f"oddstream: {exc}", file=sys.stderr)
                    return 2
                return _run(lambda: _gateway_main(settings))
            case "worker":
                return _run(lambda: _worker_main(settings, args.worker_id))
            case "ingest":
                return _run(lambda: _ingest_main(settings, args.source))
            case "simulate":
                return _run(lambda: _simulate_main(settings, args.rate, args.duration, args.seed))
            case "listen":
                return _run(lambda: _listen_main(args))
            case "feed":
                return _run(lambda: _feed_main(settings, args))
            case "dev":
                from oddstream.dev import dev_main

                return _run(lambda: dev_main(settings, args.rate, args.feed_file, args.feed_moves))
    return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
