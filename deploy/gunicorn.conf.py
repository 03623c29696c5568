"""gunicorn settings for Oddstream gateways.

Each gunicorn worker process is one gateway (its own Hub, inbox and registration), so
`workers` is the number of gateway processes on this host. aiohttp's GunicornUVLoopWebWorker
derives its shutdown timeout from `graceful_timeout`, which should match
ODDSTREAM_SHUTDOWN_GRACE.

Logs: gunicorn's own (`gunicorn.error`) and the gateways' come out in one format on stderr
(`oddstream.shared.logs`: JSON lines in production, readable with ODDSTREAM_LOG_FORMAT=console
or in development), at ODDSTREAM_LOG_LEVEL: `logconfig_dict` replaces gunicorn's handlers,
`on_starting` sets up structlog in the master before it forks the workers.
"""

import os
import sys


def _refuse_an_insecure_production_start() -> None:
    """Before any worker starts: a weak or missing JWT_SECRET in production (ODDSTREAM_ENV,
    the default) stops gunicorn with one line naming the setting, exit status 2; so does a
    REDIS_URL the gateway cannot run on, as for `oddstream gateway` (`check_redis_url`: a
    Redis Cluster node, a Sentinel service nobody monitors: 2; no sentinel answering: 1)."""
    from oddstream.gateway.auth import check_production_secrets
    from oddstream.shared.redis import RedisStartError, check_redis_url
    from oddstream.shared.settings import SettingsError, load_settings

    try:
        settings = load_settings()
        check_production_secrets(settings)
        check_redis_url(settings.effective_redis_url, settings.redis_cluster)
    except SettingsError as exc:
        print(f"oddstream: {exc}", file=sys.stderr)
        sys.exit(2)
    except RedisStartError as exc:
        print(f"oddstream: {exc}", file=sys.stderr)
        sys.exit(exc.exit_status)


def _logging() -> tuple[str, dict[str, object]]:
    """ODDSTREAM_LOG_LEVEL, and the logging configuration gunicorn applies (`logconfig_dict`)."""
    from oddstream.shared.logs import log_format, logging_config
    from oddstream.shared.settings import load_settings

    settings = load_settings()
    fmt = log_format(settings.env, settings.log_format)
    return settings.log_level, logging_config(settings.log_level, fmt)


def on_starting(server: object) -> None:
    """In the master, before any worker is forked: structlog's events go to `logconfig_dict`'s
    handler (the workers inherit this)."""
    from oddstream.shared.logs import configure_structlog

    configure_structlog(_log_level)


_refuse_an_insecure_production_start()
_log_level, logconfig_dict = _logging()
loglevel = _log_level.lower()
bind = f"{os.environ.get('ODDSTREAM_HOST', '0.0.0.0')}:{os.environ.get('ODDSTREAM_PORT', '8000')}"
workers = int(os.environ.get("ODDSTREAM_GATEWAY_PROCESSES", "2"))
worker_class = "aiohttp.GunicornUVLoopWebWorker"
graceful_timeout = int(float(os.environ.get("ODDSTREAM_SHUTDOWN_GRACE", "10")))
timeout = 30
# gunicorn's access log would print `?token=...`; the app has no access log under gunicorn
# unless you configure one that drops query strings.
accesslog = None
keepalive = 75
