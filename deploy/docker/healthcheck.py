"""The image's HEALTHCHECK: exit 0 when this container's gateway answers `GET /healthz`.

Standard library only (the slim image has no curl). The port is the gateway's own setting,
ODDSTREAM_PORT (8000 by default), so a container started with another port still checks
the right one. `/healthz` only says the process answers; `/readyz` (registered, Redis up, a
pipeline canary back) is for load balancers and Kubernetes readiness, not for restarts.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    port = os.environ.get("ODDSTREAM_PORT", "8000")
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:  # an answer other than 2xx
        status = exc.code
    except OSError as exc:  # refused, timed out, reset
        print(f"healthcheck: {url}: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"healthcheck: {url}: status {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
