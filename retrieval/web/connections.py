"""Connection limits for uvicorn's h11 server: a deadline to send each request, a cap on open connections, and
repeated connection errors logged once a minute as one line (uvicorn itself has no request-read timeout)."""

from __future__ import annotations

import asyncio
import logging
import resource
import time

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

REQUEST_READ_S = 10.0  # to send a request's head and body, from connecting or from the previous response
KEEP_ALIVE_S = 5  # an idle kept-alive connection is closed after this (uvicorn's timeout_keep_alive)
MAX_CONNECTIONS = 1000  # open at once: then the one waiting longest for a request is closed, or the new one gets 503
LOG_EVERY_S = 60.0  # a repeated server message (same logger, same first line) is logged at most this often
_BUSY_BODY = b'{"detail": "too many connections open; retry shortly"}'
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n"
         b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY))
log = logging.getLogger("uvicorn.error")


def connection_limit() -> int:
    """MAX_CONNECTIONS, or half this process's file-descriptor limit where that is lower."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return MAX_CONNECTIONS if soft == resource.RLIM_INFINITY else min(MAX_CONNECTIONS, soft // 2)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection that has not sent a whole request REQUEST_READ_S after it
    connected or got its last response (slow or stalled clients), and keeping under the connection limit."""

    _timer: asyncio.TimerHandle | None = None
    waiting_since = float("inf")  # loop time since when it waits for a request (inf: one is being answered)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.limit_concurrency is not None and len(self.connections) >= self.limit_concurrency:
            self._make_room(transport)
            if transport.is_closing():
                return
        self._arm()

    def _make_room(self, transport: asyncio.Transport) -> None:
        """At the limit: close the connection that has waited longest for a request (idle or stalled), or else
        answer this one 503 and close it (uvicorn answers 503 from `limit_concurrency` connections on)."""
        waiting = [p for p in self.connections if isinstance(p, GuardedH11Protocol) and p is not self
                   and p.waiting_since < float("inf") and not p.transport.is_closing()]
        if waiting:
            log.warning("closed the connections waiting longest for a request to admit new ones (limit %d open)",
                        self.limit_concurrency)
            min(waiting, key=lambda p: p.waiting_since).transport.close()
        else:
            log.warning("refused connections over the limit of %d open, all busy (503)", self.limit_concurrency)
            transport.write(_BUSY)
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state not in (h11.IDLE, h11.SEND_BODY):  # the whole request is in
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm()

    def _arm(self) -> None:
        self._disarm()
        self.waiting_since = self.loop.time()
        self._timer = self.loop.call_later(REQUEST_READ_S, self._read_timeout)

    def _disarm(self) -> None:
        self.waiting_since = float("inf")
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _read_timeout(self) -> None:
        self._timer = None
        if not self.transport.is_closing() and self.conn.their_state in (h11.IDLE, h11.SEND_BODY):
            log.warning("closed connections that sent no whole request within %g s", REQUEST_READ_S)
            self.transport.close()


class OncePerInterval(logging.Filter):
    """Lets a message (by logger and first line) through once per LOG_EVERY_S, counting the ones it holds back;
    an OSError's traceback (out of file descriptors, say) becomes part of the one line."""

    def __init__(self) -> None:
        super().__init__()
        self.last: dict[tuple[str, str], tuple[float, int]] = {}  # (logger, first line) -> (time let through, held)

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg).split("\n", 1)[0])
        now = time.monotonic()
        since, held = self.last.get(key, (float("-inf"), 0))
        if now - since < LOG_EVERY_S:
            self.last[key] = (since, held + 1)
            return False
        self.last[key] = (now, 0)
        message = record.getMessage().replace("\n", "; ")
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, OSError):
            message += f": {type(error).__name__}: {error}"
            record.exc_info = record.exc_text = None
        if held:
            message += f" ({held:,} more like this in the last {now - since:.0f} s)"
        record.msg, record.args = message, None
        return True


ONCE = OncePerInterval()


def quiet_repeats() -> None:
    """Log repeated connection errors from asyncio and uvicorn once per LOG_EVERY_S (a flood of accept errors
    or refused connections is one line a minute)."""
    for name in ("asyncio", "uvicorn.error"):
        logging.getLogger(name).addFilter(ONCE)
