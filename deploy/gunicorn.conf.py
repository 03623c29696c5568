"""gunicorn settings for Oddstream gateways.

Each gunicorn worker process is one gateway (its own Hub, inbox and registration), so
`workers` is the number of gateway processes on this host. aiohttp's GunicornUVLoopWebWorker
derives its shutdown timeout from `graceful_timeout`, which should match
ODDSTREAM_SHUTDOWN_GRACE.
"""

import os

bind = f"{os.environ.get('ODDSTREAM_HOST', '0.0.0.0')}:{os.environ.get('ODDSTREAM_PORT', '8000')}"
workers = int(os.environ.get("ODDSTREAM_GATEWAY_PROCESSES", "2"))
worker_class = "aiohttp.GunicornUVLoopWebWorker"
graceful_timeout = int(float(os.environ.get("ODDSTREAM_SHUTDOWN_GRACE", "10")))
timeout = 30
# gunicorn's access log would print `?token=...`; the app has no access log under gunicorn
# unless you configure one that drops query strings.
accesslog = None
keepalive = 75
