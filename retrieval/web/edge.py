"""What every request passes before the app: a Host this server answers to, same-origin JSON writes, a bounded
head and body however the body is framed, and the security headers on every response."""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException

Scope = dict
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY_BYTES = 256 * 1024  # a 20,000-character CJK query JSON-escaped (\uXXXX) is about 120 KB
MAX_HEADERS = 100  # header lines in one request (their total size is bounded by the server: MAX_REQUEST_HEAD)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})  # the others change state: same origin and JSON only
SECURITY_HEADERS = {  # the page loads only its own files: statute text can never bring in a script
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}
CROSS_SITE = ("cross-site", "same-site")  # Sec-Fetch-Site of a page elsewhere (same-site: another port here)
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
_SECURITY = [(name.lower().encode(), value.encode()) for name, value in SECURITY_HEADERS.items()]


class Edge:
    """ASGI middleware: refuse a cross-origin write (403), a write with a non-JSON body (415), too many headers (431), a body
    over MAX_BODY_BYTES (413, counted as it streams in: chunked bodies too); add SECURITY_HEADERS to responses."""

    def __init__(self, app: App):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        send = _secured(send)
        refusal = _refusal(scope)
        if refusal is not None:
            return await answer(send, *refusal)
        await self.app(scope, _limited(receive), send)


class HostCheck:
    """ASGI middleware: answer 421 to a Host header that names none of `names` (DNS rebinding: a page on another
    site whose name now resolves to this machine). An address is always accepted: a rebound page has a name."""

    def __init__(self, app: App, names: Iterable[str]):
        self.app, self.names = app, frozenset(n.lower() for n in names)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = _header(scope, b"host")
            if host is not None and not self.accepts(host):
                return await answer(_secured(send), 421, f"host {host!r} is not a name this server answers to "
                                                         f"({', '.join(sorted(self.names))} or an address)")
        await self.app(scope, receive, send)

    def accepts(self, host: str) -> bool:
        """Whether a Host header value (name or address, optional port) is one this server answers to."""
        try:
            name = urlsplit(f"//{host}").hostname or ""
        except ValueError:  # an unclosed "[" and the like
            return False
        try:
            ipaddress.ip_address(name)
            return True
        except ValueError:
            return name in self.names or f"[{name}]" in self.names


def host_names(host: str) -> list[str]:
    """The names a server bound to `host` answers to: the loopback names, `host`, and this machine's names when
    `host` is every interface."""
    names = [*LOOPBACK_NAMES, f"[{host}]" if ":" in host else host]
    if host in ("0.0.0.0", "::", ""):
        names += [socket.gethostname(), socket.getfqdn()]
    return names


async def answer(send: Send, status: int, detail: str) -> None:
    """A JSON error {"detail": ...} that closes the connection (the rest of the request is not read)."""
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def _refusal(scope: Scope) -> tuple[int, str] | None:
    """(status, message) when the request is refused before the app sees it, else None."""
    if len(scope["headers"]) > MAX_HEADERS:
        return 431, f"request has {len(scope['headers']):,} header lines; the limit is {MAX_HEADERS}"
    length = _header(scope, b"content-length") or ""
    if length.isdigit() and int(length) > MAX_BODY_BYTES:
        return 413, f"request body is {int(length):,} bytes; the limit is {MAX_BODY_BYTES:,}"
    if scope["method"] in SAFE_METHODS:
        return None
    origin, site = _header(scope, b"origin"), _header(scope, b"sec-fetch-site")
    if origin is not None and _netloc(origin) != (_header(scope, b"host") or "").lower():
        return 403, f"{scope['method']} from another site's page (Origin {origin!r}) is refused"
    if site in CROSS_SITE:
        return 403, f"{scope['method']} from another site's page (Sec-Fetch-Site {site!r}) is refused"
    kind = (_header(scope, b"content-type") or "application/json").split(";")[0].strip().lower()
    empty = length in ("", "0") and _header(scope, b"transfer-encoding") is None  # curl -X POST, urllib data=b""
    if kind != "application/json" and not empty:
        return 415, f"{scope['method']} takes a JSON body (Content-Type: application/json), not {kind!r}"
    return None


def _limited(receive: Receive) -> Receive:
    """`receive` that raises 413 as soon as the body read so far passes MAX_BODY_BYTES."""
    seen = 0

    async def limited() -> dict:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > MAX_BODY_BYTES:
                raise HTTPException(413, f"request body is longer than the limit of {MAX_BODY_BYTES:,} bytes",
                                    headers={"Connection": "close"})
        return message
    return limited


def _secured(send: Send) -> Send:
    """`send` that adds SECURITY_HEADERS to a response that lacks them."""

    async def secured(message: dict) -> None:
        if message["type"] == "http.response.start":
            have = {name.lower() for name, _ in message.get("headers", [])}
            message["headers"] = [*message.get("headers", []), *(h for h in _SECURITY if h[0] not in have)]
        await send(message)
    return secured


def _netloc(url: str) -> str | None:
    """host[:port] of a URL (an Origin header), lower case; None when it has none ("null") or does not parse."""
    try:
        return urlsplit(url).netloc.lower() or None
    except ValueError:
        return None


def _header(scope: Scope, name: bytes) -> str | None:
    """A request header's value (the first, decoded as Latin-1), or None."""
    return next((value.decode("latin-1") for key, value in scope["headers"] if key == name), None)
