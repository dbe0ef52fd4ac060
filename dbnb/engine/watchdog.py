"""A client-side deadline for blocking psycopg calls: past it, the socket is shut down.

A network path that goes silent (a proxy or NAT that stops forwarding but keeps its sockets)
leaves libpq waiting forever: the server never sees the query, so ``statement_timeout`` cannot
help, and on such a path the proxy's kernel still acknowledges every packet, so TCP keepalives
and ``tcp_user_timeout`` notice nothing. The only bound that always works is on the client:
one daemon thread keeps the armed deadlines and, when one passes, shuts the connection's socket
down, so the blocked call returns at once with a connection error (the pool then discards the
connection). asyncpg needs none of this: its calls take a ``timeout``.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import threading
import time
from dataclasses import dataclass, field

__all__ = ["Deadline", "arm"]


@dataclass(order=True)
class Deadline:
    """One armed deadline; :meth:`disarm` it when the call returns."""

    when: float
    order: int
    fd: int = field(compare=False)
    expired: bool = field(default=False, compare=False)
    done: bool = field(default=False, compare=False)

    def disarm(self) -> bool:
        """Stop watching; return True if the deadline had already passed (the socket is shut)."""
        with _cond:
            self.done = True
            return self.expired


_cond = threading.Condition()
_heap: list[Deadline] = []
_counter = itertools.count()
_thread: threading.Thread | None = None


def arm(fd: int, seconds: float) -> Deadline:
    """Shut the socket ``fd`` down if the returned deadline is not disarmed within ``seconds``."""
    global _thread
    deadline = Deadline(time.monotonic() + seconds, next(_counter), fd)
    with _cond:
        heapq.heappush(_heap, deadline)
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_watch, name="dbnb-watchdog", daemon=True)
            _thread.start()
        _cond.notify()
    return deadline


def _watch() -> None:
    while True:
        with _cond:
            while _heap and _heap[0].done:
                heapq.heappop(_heap)
            if not _heap:
                _cond.wait()
                continue
            first = _heap[0]
            remaining = first.when - time.monotonic()
            if remaining > 0:
                _cond.wait(remaining)
                continue
            heapq.heappop(_heap)
            first.expired = True
            _shutdown(first.fd)


def _shutdown(fd: int) -> None:
    # A duplicate descriptor shares the socket: shutting it down wakes the blocked libpq call,
    # while closing only the duplicate leaves libpq's own descriptor for libpq to close.
    with contextlib.suppress(OSError):
        dup = os.dup(fd)
        with socket.socket(fileno=dup) as sock:
            sock.shutdown(socket.SHUT_RDWR)
