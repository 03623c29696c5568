"""What browsers need besides the WebSocket: the dashboard, the client module, and whoami.

Browsers cannot read the HTTP status of a refused WebSocket upgrade (they only see close 1006),
so the browser client asks `GET /ws/v2/whoami` why a handshake failed: the same token checks
as the upgrade, answered with the same JSON error body (code, error, hint).
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from oddstream.gateway.auth import AuthError, check_not_revoked
from oddstream.gateway.management import json_error, json_response
from oddstream.gateway.state import METRICS, NODE, VERIFIER

__all__ = ["STATIC_DIR", "add_browser_routes"]

STATIC_DIR = Path(__file__).parent / "static"

#: The dashboard loads only its own files and talks only WebSocket (to any gateway URL the
#: user picks) and HTTP back to this origin.
_PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss: http: https:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
_PAGE_HEADERS = {
    "Content-Security-Policy": _PAGE_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Small files that change with the gateway version: revalidate rather than go stale.
    "Cache-Control": "no-cache",
}


async def dashboard(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers=_PAGE_HEADERS)


async def static_file(request: web.Request) -> web.StreamResponse:
    """A file of `gateway/static` (no subdirectories, no dotfiles, nothing outside it)."""
    name = request.match_info["name"]
    path = STATIC_DIR / name
    if "/" in name or name.startswith(".") or not path.is_file():
        raise web.HTTPNotFound()
    headers = dict(_PAGE_HEADERS)
    if name.endswith(".ts"):
        headers["Content-Type"] = "application/typescript; charset=utf-8"
    elif name.endswith((".js", ".mjs")):
        headers["Content-Type"] = "text/javascript; charset=utf-8"
    return web.FileResponse(path, headers=headers)


async def whoami(request: web.Request) -> web.Response:
    """The identity a token would connect as, or the error the upgrade would be refused with."""
    try:
        identity = await request.app[VERIFIER].identify(request)
        await check_not_revoked(request.app[NODE].registry, identity)
    except AuthError as exc:
        request.app[METRICS].errors_of(exc.code.value).inc()
        return json_error(401, exc.code, exc.message, reason=exc.reason)
    return json_response(
        {
            "status": "success",
            "anonymous": identity.anonymous,
            "user": identity.user,
            "scopes": sorted(identity.scopes) if identity.scopes is not None else None,
            "expires_at": identity.expires_at,
            "admin": identity.admin,
        }
    )


def add_browser_routes(app: web.Application) -> None:
    app.router.add_get("/", dashboard)
    app.router.add_get("/static/{name}", static_file)
    app.router.add_get("/ws/v2/whoami", whoami)
