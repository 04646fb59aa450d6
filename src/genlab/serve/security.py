"""The studio's guard: an ASGI middleware that every request, page, API call and event stream passes first.

* **Host** (DNS rebinding): the Host header must name this machine's loopback (``localhost``, ``127.0.0.1``,
  ``[::1]``) or the host the server was explicitly bound to; anything else is 403 before routing. A page on
  ``evil.example`` whose name was re-pointed at 127.0.0.1 sends ``Host: evil.example`` and is refused.
* **Origin** (cross-site requests): a request that changes state (any method but GET, HEAD, OPTIONS) must carry the
  page's own Origin, ``http://`` + its Host; ``Origin: null``, a missing or foreign Origin, and
  ``Sec-Fetch-Site: cross-site`` are 403. No CORS headers are ever sent, so no other site can read a response.
* **Token**: bound to another host than loopback, every request needs the token (``?token=`` once, which sets a
  SameSite=Strict, HttpOnly cookie, or the ``X-Genlab-Token`` header).
* **Headers** on every response: ``Content-Security-Policy: default-src 'self'`` (no inline script, no remote
  anything), ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``, ``Referrer-Policy: no-referrer``.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

LOOPBACK = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
COOKIE = "genlab_token"
HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable, Callable], Awaitable[None]]


def host_name(host_header: str) -> str:
    """``"127.0.0.1:7860"`` → ``"127.0.0.1"``; ``"[::1]:80"`` → ``"[::1]"``."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class Guard:
    """Wraps an ASGI app with the checks of the module docstring. ``bound``: the host the server listens on;
    ``token``: required on every request when set (the server sets it when ``bound`` is not loopback)."""

    def __init__(self, app: ASGIApp, *, bound: str = "127.0.0.1", token: str | None = None) -> None:
        self.app = app
        self.hosts = set(LOOPBACK) | {bound.lower()}
        self.token = token

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] == "websocket":  # the studio has none: progress comes as Server-Sent Events
            return await send({"type": "websocket.close", "code": 1008})
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host", "")
        if host_name(host) not in self.hosts:
            return await _deny(send, 403, "forbidden host")
        method = scope.get("method", "GET")
        if method not in SAFE_METHODS:
            origin = headers.get("origin")
            if origin is None or origin == "null" or origin.lower() != f"http://{host.lower()}":
                return await _deny(send, 403, "cross-origin request refused")
        if headers.get("sec-fetch-site") == "cross-site":
            return await _deny(send, 403, "cross-site request refused")
        set_cookie = None
        if self.token is not None:
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            given = headers.get("x-genlab-token") or _cookie(headers.get("cookie", ""), COOKIE)
            if given is None and query.get("token"):
                given, set_cookie = query["token"][0], query["token"][0]
            if given is None or not hmac.compare_digest(given, self.token):
                return await _deny(send, 401, "a token is required (open the address the server printed)")

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                extra = list(HEADERS)
                if set_cookie is not None:
                    extra.append((b"set-cookie", f"{COOKIE}={set_cookie}; HttpOnly; SameSite=Strict; Path=/".encode()))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        return await self.app(scope, receive, send_with_headers)


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


async def _deny(send: Callable, status: int, reason: str) -> None:
    body = reason.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), *HEADERS]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})
