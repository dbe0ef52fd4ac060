"""Bounded waits on both engines: a network path that goes silent, slow calls, URL options.

The silent path is a TCP proxy on 127.0.0.1 in front of the test server that can stop
forwarding without closing its sockets (what a NAT or a proxy that lost its upstream does): the
kernel keeps acknowledging every packet, so only a client-side bound can notice.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import URL

import dbnb
from tests.conftest import free_port


class SilentProxy:
    """Forward 127.0.0.1:port to the server; :meth:`silence` stops forwarding, sockets open."""

    def __init__(self, target: tuple[int, str | tuple[str, int]]) -> None:
        self.family, self.address = target
        self.port = free_port()
        self._flowing = threading.Event()
        self._flowing.set()
        self._closed = False
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def silence(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        self._flowing.wait()  # a new connection while silent: accepted, never forwarded
        upstream = socket.socket(self.family, socket.SOCK_STREAM)
        upstream.connect(self.address)
        self._sockets += [client, upstream]
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while True:
                data = source.recv(65536)
                self._flowing.wait()  # silent: hold the data, keep the socket open
                if not data or self._closed:
                    break
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._closed = True
        self._flowing.set()
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()


@pytest.fixture
def proxy(server_url: URL) -> Iterator[SilentProxy]:
    host = server_url.query.get("host")
    if isinstance(host, str) and host.startswith("/"):
        port = server_url.query.get("port", "5432")
        target: tuple[int, str | tuple[str, int]] = (
            socket.AF_UNIX, os.path.join(host, f".s.PGSQL.{port}")
        )
    else:
        target = (socket.AF_INET, (server_url.host or "127.0.0.1", server_url.port or 5432))
    p = SilentProxy(target)
    yield p
    p.close()


def _through(proxy: SilentProxy, db: dbnb.Database) -> URL:
    return URL.create("postgresql", username=db.url.username, host="127.0.0.1",
                      port=proxy.port, database=db.database)


async def test_a_silent_path_fails_within_15_s_then_recovers(
    proxy: SilentProxy, db: dbnb.Database
) -> None:
    # Defaults only: ping_timeout 5 s, connect_timeout 5 s.
    victim = dbnb.connect(_through(proxy, db), application_name="dbnb-silent", pool_size=2)
    try:
        assert victim.execute("SELECT 1 AS one")[0].one == 1
        assert (await victim.asyncio.execute("SELECT 2 AS two"))[0].two == 2
        proxy.silence()
        start = time.monotonic()
        with pytest.raises(dbnb.ConnectionFailed) as info:
            victim.execute("SELECT 1")
        sync_seconds = time.monotonic() - start
        start = time.monotonic()
        with pytest.raises(dbnb.ConnectionFailed) as ainfo:
            await victim.asyncio.execute("SELECT 1")
        async_seconds = time.monotonic() - start
        assert sync_seconds < 15 and async_seconds < 15, (sync_seconds, async_seconds)
        for message in (str(info.value), str(ainfo.value)):
            assert f"127.0.0.1:{proxy.port}" in message, message
            assert "ping_timeout" in message and "connect_timeout" in message, message
        proxy.resume()
        assert victim.execute("SELECT 3 AS three")[0].three == 3
        assert (await victim.asyncio.execute("SELECT 4 AS four"))[0].four == 4
    finally:
        proxy.resume()
        await victim.asyncio.close()


@pytest.mark.parametrize("engine", ["sync", "async"])
async def test_command_timeout_bounds_every_call(db: dbnb.Database, engine: str) -> None:
    bounded = dbnb.connect(db.url, command_timeout=1.5, pool_size=1,
                           application_name=f"dbnb-command-{engine}")
    try:
        start = time.monotonic()
        with pytest.raises(dbnb.ConnectionFailed, match=r"command_timeout=1\.5 s"):
            if engine == "sync":
                bounded.execute("SELECT pg_sleep(20)")
            else:
                await bounded.asyncio.execute("SELECT pg_sleep(20)")
        assert time.monotonic() - start < 5
        # The Database goes on working: the broken connection was replaced.
        if engine == "sync":
            assert bounded.execute("SELECT 5 AS five")[0].five == 5
        else:
            assert (await bounded.asyncio.execute("SELECT 5 AS five"))[0].five == 5
    finally:
        await bounded.asyncio.close()


async def test_tcp_keepalives_are_on_for_both_drivers(
    proxy: SilentProxy, db: dbnb.Database
) -> None:
    tcp = dbnb.connect(_through(proxy, db), application_name="dbnb-keepalive", pool_size=1)
    try:
        with tcp.engine.connect() as conn:
            raw = conn.connection.driver_connection
            assert raw is not None
            with socket.socket(fileno=os.dup(raw.pgconn.socket)) as sock:
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 30_000
        async with tcp.async_engine.connect() as aconn:
            araw = (await aconn.get_raw_connection()).driver_connection
            asock = araw._transport.get_extra_info("socket")
            assert asock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            assert asock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 30
    finally:
        await tcp.asyncio.close()


async def test_driver_specific_url_options_reach_only_their_driver(db: dbnb.Database) -> None:
    url = db.url.update_query_dict({"command_timeout": "30", "keepalives_idle": "20"})
    both = dbnb.connect(url, application_name="dbnb-options", pool_size=1)
    try:
        assert both.execute("SELECT 1 AS one")[0].one == 1  # libpq never sees command_timeout
        assert (await both.asyncio.execute("SELECT 1 AS one"))[0].one == 1  # nor asyncpg
    finally:
        await both.asyncio.close()
    with pytest.raises(dbnb.ConfigError, match="bogus_option"):
        dbnb.connect(db.url.update_query_dict({"bogus_option": "1"}))
    certs = dbnb.connect(db.url.update_query_dict({"sslrootcert": "/nonexistent"}),
                         application_name="dbnb-certs", pool_size=1)
    try:
        with pytest.raises(dbnb.ConfigError, match="sslrootcert"):
            await certs.asyncio.execute("SELECT 1")
    finally:
        certs.close()


async def test_url_options_are_merged_with_dbnbs_settings(db: dbnb.Database) -> None:
    db.execute("CREATE SCHEMA IF NOT EXISTS elsewhere")
    url = db.url.update_query_dict({"options": "-c search_path=elsewhere"})
    merged = dbnb.connect(url, statement_timeout=4000, application_name="dbnb-merged",
                          pool_size=1)
    try:
        for rows in (merged.execute("SHOW search_path"),
                     await merged.asyncio.execute("SHOW search_path")):
            assert rows[0][0] == "elsewhere"
        for rows in (merged.execute("SHOW statement_timeout"),
                     await merged.asyncio.execute("SHOW statement_timeout")):
            assert rows[0][0] == "4s"
    finally:
        await merged.asyncio.close()
