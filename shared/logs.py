"""Structured logs for every Oddstream process: structlog on top of stdlib logging.

A log record is an event with a constant name (`gateway.redis.up`, never a formatted
message) and its values as fields, with names shared across the code base: `client_id`,
`room`, `gateway`, `worker`, `user`, `partition`, `stream`, `entry_id`, `reason`, `code`,
`error`. Modules log through `get_logger(__name__)`:

    log.warning("gateway.redis.down", gateway=gateway_id)

`configure_logging` (every `oddstream` command; gunicorn through `logging_config` and
`configure_structlog`, see deploy/gunicorn.conf.py) puts one handler on the root logger whose
`structlog.stdlib.ProcessorFormatter` renders structlog's events and the stdlib records of
libraries (aiohttp, gunicorn, redis-py) alike, on stderr: one JSON object a line (`json`, the
production default) or a readable line (`console`, the development default; colours only on
a terminal). Each has `timestamp` (ISO 8601, UTC), `level`, `event`, `logger`, the fields, and
`exception` (the traceback, as text) when one was logged.

Until `configure_logging` runs (the app embedded in another program, the tests), events are
handed to stdlib logging as records whose message is the event name and whose attributes are
the fields, so the host's own logging configuration decides where they go.

Levels below the configured one cost a call to an empty method (`make_filtering_bound_logger`,
loggers cached on first use). Log on state changes and failures, never per event or frame.
"""

from __future__ import annotations

import logging
import logging.config
import os
import sys
from typing import Any, Literal, TextIO, cast

import orjson
import structlog
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

__all__ = [
    "LogFormat",
    "configure_logging",
    "configure_structlog",
    "formatter",
    "get_logger",
    "log_format",
    "logging_config",
]

#: `json`: one JSON object a line, for log collectors. `console`: readable, for people.
LogFormat = Literal["json", "console"]

#: Added to structlog's events and to stdlib records from libraries alike.
_COMMON: tuple[Processor, ...] = (
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
)

#: The keys every line starts with, in this order; fields follow as they were given.
_FIRST = ("timestamp", "level", "event", "logger")


def get_logger(name: str) -> FilteringBoundLogger:
    """The logger of a module (`get_logger(__name__)`); `.bind(...)` adds fields to every
    event it logs, e.g. a connection's `client_id` and `gateway`."""
    return cast(FilteringBoundLogger, structlog.get_logger(name))


def log_format(env: str, configured: str | None = None) -> LogFormat:
    """The format a process logs in: `ODDSTREAM_LOG_FORMAT` when set, else `console` in
    development and `json` in production."""
    if configured in ("json", "console"):
        return cast(LogFormat, configured)
    return "console" if env == "development" else "json"


def _dumps(event_dict: EventDict, **_: Any) -> str:
    return orjson.dumps(event_dict, default=repr).decode()


def _ordered(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """timestamp, level, event, logger first: the same shape on every line."""
    first = {key: event_dict.pop(key) for key in _FIRST if key in event_dict}
    first.update(event_dict)
    return first


def _colors(stream: TextIO) -> bool:
    """Colours on a terminal only, and never with NO_COLOR set (https://no-color.org)."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and not os.environ.get("NO_COLOR")


def formatter(fmt: LogFormat = "json") -> logging.Formatter:
    """The formatter of every handler: renders structlog events and stdlib records alike."""
    processors: list[Processor] = [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
        structlog.processors.UnicodeDecoder(),
    ]
    if fmt == "json":
        processors += [
            structlog.processors.format_exc_info,
            _ordered,
            structlog.processors.JSONRenderer(serializer=_dumps),
        ]
    else:
        processors.append(
            structlog.dev.ConsoleRenderer(
                colors=_colors(sys.stderr),
                exception_formatter=structlog.dev.plain_traceback,
            )
        )
    return structlog.stdlib.ProcessorFormatter(foreign_pre_chain=_COMMON, processors=processors)


def logging_config(level: str, fmt: LogFormat) -> dict[str, Any]:
    """A `logging.config.dictConfig` configuration: one stderr handler on the root logger with
    `formatter(fmt)`; gunicorn's own loggers hand their records to it (gunicorn applies this
    as `logconfig_dict`, which replaces its default handlers). Existing loggers stay on."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"oddstream": {"()": formatter, "fmt": fmt}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "oddstream",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            name: {"level": level, "handlers": [], "propagate": True}
            for name in ("gunicorn.error", "gunicorn.access")
        },
    }


def configure_structlog(level: str) -> None:
    """Route structlog's events to stdlib logging for `formatter` to render; below `level`
    a log call does nothing."""
    structlog.configure(
        processors=[*_COMMON, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level]),
        cache_logger_on_first_use=True,
    )


def configure_logging(level: str, fmt: LogFormat) -> None:
    """Set up logging for this process: the stderr handler and structlog (`level`: DEBUG,
    INFO, WARNING or ERROR)."""
    logging.config.dictConfig(logging_config(level, fmt))
    configure_structlog(level)


def _hand_to_stdlib() -> None:
    """The default before `configure_logging`: stdlib logging decides (levels, handlers,
    format); a record's message is the event name, its fields are record attributes."""
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.render_to_log_kwargs,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


if not structlog.is_configured():
    _hand_to_stdlib()
