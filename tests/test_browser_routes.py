"""The HTTP side of the browser support: the dashboard page, static files and whoami."""

from __future__ import annotations

import time

import aiohttp
from pydantic import SecretStr

from oddstream.gateway.auth import issue_token
from oddstream.shared.settings import Settings
from tests.harness import ADMIN, running_gateway

SECRET = "routes-test-secret-0123456789abcdef012345"


async def test_dashboard_and_client_files_are_served_with_a_strict_policy(
    settings: Settings,
) -> None:
    async with running_gateway(settings) as gw, aiohttp.ClientSession() as http:
        async with http.get(f"{gw.http}/") as page:
            assert page.status == 200
            assert "text/html" in page.headers["Content-Type"]
            policy = page.headers["Content-Security-Policy"]
            assert "script-src 'self'" in policy and "unsafe-inline" not in policy
            assert '<script type="module" src="/static/dashboard.js">' in await page.text()
        for name, kind in [
            ("oddstream.js", "text/javascript"),
            ("oddstream.d.ts", "application/typescript"),
            ("contract.js", "text/javascript"),
            ("contract.d.ts", "application/typescript"),
            ("dashboard.js", "text/javascript"),
            # the modules both import (by relative path) are served the same way
            ("manager.js", "text/javascript"),
            ("errors.d.ts", "application/typescript"),
            ("dashboard-board.js", "text/javascript"),
            ("dashboard.css", "text/css"),
        ]:
            async with http.get(f"{gw.http}/static/{name}") as file:
                assert file.status == 200, name
                assert file.headers["Content-Type"].startswith(kind), (name, file.headers)
                assert file.headers["X-Content-Type-Options"] == "nosniff"
        # Nothing outside gateway/static, no dotfiles, no guessing.
        for path in ["/static/../app.py", "/static/%2e%2e%2fapp.py", "/static/.hidden",
                     "/static/nope.js", "/static/"]:  # fmt: skip
            async with http.get(f"{gw.http}{path}") as missing:
                assert missing.status == 404, path
                assert (await missing.json())["code"] == "not_found"


async def test_whoami_explains_what_the_upgrade_would_say(settings: Settings) -> None:
    settings = settings.model_copy(update={"jwt_secret": SecretStr(SECRET)})
    async with running_gateway(settings) as gw, aiohttp.ClientSession() as http:
        url = f"{gw.http}/ws/v2/whoami"
        async with http.get(url) as anon:
            assert anon.status == 200
            assert (await anon.json())["anonymous"] is True

        token = issue_token(SECRET, "alice", ttl=600, scopes=["odds_updates"])
        async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as good:
            body = await good.json()
            assert good.status == 200
            assert (body["user"], body["scopes"], body["anonymous"]) == (
                "alice",
                ["odds_updates"],
                False,
            )
            assert abs(body["expires_at"] - (time.time() + 600)) < 5

        cases = {
            "garbage": ("invalid_token", "Obtain a new token"),
            issue_token(SECRET, "alice", ttl=-600): ("token_expired", "Refresh the token"),
            issue_token("another-secret-0123456789abcdef0123", "alice"): (
                "invalid_token",
                "Obtain a new token",
            ),
        }
        for bad, (code, hint) in cases.items():
            async with http.get(url, headers={"Authorization": f"Bearer {bad}"}) as refused:
                body = await refused.json()
                assert refused.status == 401
                assert body["code"] == code
                assert body["hint"].startswith(hint)
                assert body["error"].endswith(body["hint"])

        # A revoked user's old token is refused here too, as at the upgrade.
        async with http.post(
            f"{gw.http}/ws/v2/admin/revoke", json={"user": "alice"}, headers=ADMIN
        ) as revoked:
            assert revoked.status == 200
        async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as after:
            assert after.status == 401
            assert (await after.json())["reason"] == "revoked"
