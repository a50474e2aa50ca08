"""HTTP to model providers: one pooled `requests.Session` per upstream base URL, made once.

The proxy's own calls (`post`) take a connection from the session's urllib3 pool, which keeps
connecting, TLS, timeouts and the reuse check, and write the request and read the answer on its
socket themselves: requests' per-call machinery, then urllib3's and http.client's (header
parsing through the email package, the response objects), was most of the proxy's HTTP-client
CPU and buys nothing on a fixed JSON POST. Other calls (listing models) use the session."""

from __future__ import annotations

import contextlib
import threading
import time

import requests
import urllib3
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from metering.routing import Upstream
from spendplane.socket_checks import readable_now
from spendplane.stream_watch import stream_watch

_sessions: dict[str, requests.Session] = {}
_lock = threading.Lock()


class _HTTPConnection(urllib3.connection.HTTPConnection):
    @property
    def is_connected(self) -> bool:
        # urllib3 asks before reusing a pooled connection; see spendplane/socket_checks.py.
        return self.sock is not None and not readable_now(self.sock)


class _HTTPSConnection(urllib3.connection.HTTPSConnection):
    is_connected = _HTTPConnection.is_connected


class _HTTPConnectionPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSConnectionPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _Adapter(HTTPAdapter):
    """requests' adapter, whose pools reuse a connection after the cheap check above."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPConnectionPool, "https": _HTTPSConnectionPool}


def session_for(upstream: Upstream) -> requests.Session:
    key = upstream.base_url
    session = _sessions.get(key)
    if session is None:
        with _lock:
            session = _sessions.get(key)
            if session is None:
                session = requests.Session()
                # Retries are the gateway's decision, never urllib3's: a silent retry double-bills.
                adapter = _Adapter(
                    pool_connections=4, pool_maxsize=settings.SPENDPLANE_UPSTREAM_POOL_SIZE, max_retries=0
                )
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                session.trust_env = False
                _sessions[key] = session
    return session


class UpstreamResponse:
    """A provider's answer, read straight off the pooled connection's socket.

    Only what the gateway needs of HTTP/1.1: a status line and headers, then a body framed by
    Content-Length, chunked encoding, or the connection closing. Errors are urllib3's, as before:
    `ReadTimeoutError` for a silent provider, `ProtocolError` for a connection cut mid-answer.
    A streamed answer's read timeout is kept by the process's stream watcher (`stream_watch`)
    rather than by the socket; its cut reads as the same `ReadTimeoutError`."""

    __slots__ = (
        "_buffer",
        "_chunk_left",
        "_complete",
        "_crlf_due",
        "_data",
        "_framing",
        "_left",
        "_pool",
        "_reusable",
        "_url",
        "_watched",
        "connection",
        "headers",
        "status",
    )

    def __init__(self, pool, conn, url: str) -> None:
        self._pool, self.connection, self._url = pool, conn, url
        self._buffer = b""
        self._data: bytes | None = None
        self._complete = self._crlf_due = False
        self._chunk_left = 0
        self._watched = None
        while True:  # interim 1xx answers (100 Continue) come before the real one
            self.status, self.headers, keep_alive = self._read_head()
            if not 100 <= self.status < 200 or self.status == 101:
                break
        self._reusable = keep_alive
        encoding = self.headers.get("transfer-encoding", "").lower()
        if "chunked" in encoding:
            self._framing, self._left = "chunked", None
        elif self.status in (204, 304) or self.status < 200:
            self._framing, self._left = "length", 0
        elif "content-length" in self.headers:
            try:
                self._left = int(self.headers["content-length"])
            except ValueError:
                raise ProtocolError(f"invalid Content-Length {self.headers['content-length']!r}") from None
            self._framing = "length"
        else:
            self._framing, self._left, self._reusable = "close", None, False
        if self._framing == "length" and self._left == 0:
            self._complete = True

    @property
    def data(self) -> bytes:
        """The whole body (what is left of it, after `stream`)."""
        if self._data is None:
            self._data = b"".join(self.stream())
        return self._data

    def stream(self, amt: int | None = None):
        """The body as it arrives, in pieces of at most `amt` bytes (bytes already received are
        never held back waiting for more)."""
        amt = amt or _MAX_PIECE_BYTES
        while not self._complete:
            piece = self._next_piece(amt)
            if self._framing == "chunked":
                # The chunks that came with it in the same read go with it (a stream's events are
                # a chunk each, and several often arrive together): one relay, one send.
                while self._buffer and len(piece) < amt and not self._complete:
                    more = self._next_chunk_piece(amt - len(piece), read=False)
                    if more is None:
                        break
                    piece += more
            if piece:
                yield piece

    def release(self) -> None:
        """Give the connection back to the pool if its answer was read to the end, else drop it
        (a connection with part of an answer still unread cannot carry the next request)."""
        conn, self.connection = self.connection, None
        if conn is None:
            return
        stream_watch.forget(self._watched)
        if self._complete and self._reusable and not self._buffer:
            self._pool._put_conn(conn)
        else:
            conn.close()
            self._pool._put_conn(None)

    def _recv(self) -> bytes:
        watched = self._watched
        try:
            data = self.connection.sock.recv(65536)
        except OSError as exc:
            # A stream the watcher cut: under TLS gevent fails the pending read; without TLS the
            # read sees the end of the stream (below).
            if isinstance(exc, TimeoutError) or (watched is not None and watched.expired):
                raise ReadTimeoutError(self._pool, self._url, "Read timed out.") from None
            raise
        if not data:
            if watched is not None and watched.expired:
                raise ReadTimeoutError(self._pool, self._url, "Read timed out.")
            raise ProtocolError("Connection broken: the provider closed the connection mid-answer")
        if watched is not None:
            watched.last_read = time.monotonic()
        return data

    def _read_head(self) -> tuple[int, dict[str, str], bool]:
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            if len(self._buffer) > _MAX_HEAD_BYTES:
                raise ProtocolError("the provider's response headers are too long")
            self._buffer += self._recv()
        head, self._buffer = self._buffer[:end].decode("latin-1"), self._buffer[end + 4 :]
        status_line, *lines = head.split("\r\n")
        version, _, rest = status_line.partition(" ")
        try:
            status = int(rest[:3])
        except ValueError:
            raise ProtocolError(f"not an HTTP response: {status_line[:80]!r}") from None
        if not version.startswith("HTTP/1."):
            raise ProtocolError(f"not an HTTP/1.x response: {status_line[:80]!r}")
        headers: dict[str, str] = {}
        name = ""
        for line in lines:
            if line[:1] in (" ", "\t") and name:  # an obsolete folded continuation
                headers[name] += " " + line.strip()
                continue
            name, _, value = line.partition(":")
            name, value = name.strip().lower(), value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        connection = headers.get("connection", "").lower()
        keep_alive = "close" not in connection and (version != "HTTP/1.0" or "keep-alive" in connection)
        return status, headers, keep_alive

    def _next_piece(self, amt: int) -> bytes:
        if self._framing == "chunked":
            return self._next_chunk_piece(amt)
        if not self._buffer:
            try:
                self._buffer = self._recv()
            except ProtocolError:
                if self._framing == "close":
                    self._complete = True
                    return b""
                raise
        piece = self._buffer[:amt] if self._left is None else self._buffer[: min(amt, self._left)]
        self._buffer = self._buffer[len(piece) :]
        if self._left is not None:
            self._left -= len(piece)
            if not self._left:
                self._complete = True
        return piece

    def _next_chunk_piece(self, amt: int, *, read: bool = True) -> bytes | None:
        """The next piece of chunk data; b"" at the last chunk. With `read=False`, only from bytes
        already received: None when the next piece (or the next chunk's size line) is not here yet."""
        if not read and not (self._buffer if self._chunk_left else self._chunk_head_received()):
            return None
        if not self._chunk_left:
            if self._crlf_due:
                self._take_line()  # the CRLF that closes the chunk before
            size = _chunk_size(self._take_line())
            if size == 0:
                while self._take_line():  # trailer fields, ignored, up to the empty line
                    pass
                self._complete = True
                return b""
            self._chunk_left, self._crlf_due = size, True
        if not self._buffer:
            if not read:
                return None
            self._buffer = self._recv()
        take = min(len(self._buffer), self._chunk_left, amt)
        piece, self._buffer = self._buffer[:take], self._buffer[take:]
        self._chunk_left -= take
        return piece

    def _chunk_head_received(self) -> bool:
        """Whether the next chunk's size line (and, after the last chunk, the trailer's end) is in
        the buffer. A size line that does not parse is left to the reading path, to raise once the
        data before it has been handed over."""
        start = 2 if self._crlf_due else 0
        end = self._buffer.find(b"\r\n", start)
        if end < 0:
            return False
        try:
            if _chunk_size(self._buffer[start:end]):
                return True
        except ProtocolError:
            return False
        return self._buffer.find(b"\r\n\r\n", end) >= 0  # the last chunk: its trailer, up to the empty line

    def _take_line(self) -> bytes:
        while (end := self._buffer.find(b"\r\n")) < 0:
            if len(self._buffer) > _MAX_HEAD_BYTES:
                raise ProtocolError("invalid chunk framing from the provider")
            self._buffer += self._recv()
        line, self._buffer = self._buffer[:end], self._buffer[end + 2 :]
        return line


def _chunk_size(size_line: bytes) -> int:
    """A chunk's size from its size line (extensions after `;` ignored)."""
    try:
        return int(size_line.split(b";", 1)[0].strip(), 16)
    except ValueError:
        raise ProtocolError(f"invalid chunk size {size_line[:40]!r}") from None


_MAX_HEAD_BYTES = 65536
_MAX_PIECE_BYTES = 1 << 20
_USER_AGENT = "spendplane"

_routes: dict[str, tuple[urllib3.HTTPConnectionPool, bytes]] = {}


def _route(upstream: Upstream, url: str) -> tuple[urllib3.HTTPConnectionPool, bytes]:
    """The connection pool for `url` and the first lines of a POST to it, worked out once. A pool
    the pool manager has since closed (evicted for another host) is looked up again."""
    found = _routes.get(url)
    if found is None or found[0].pool is None:
        pool = session_for(upstream).get_adapter(url).poolmanager.connection_from_url(url)
        parsed = urllib3.util.parse_url(url)
        host = parsed.host if parsed.port in (None, 80 if parsed.scheme == "http" else 443) else parsed.netloc
        start = f"POST {parsed.request_uri} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {_USER_AGENT}\r\n"
        found = _routes[url] = (pool, start.encode("latin-1"))
    return found


def post(upstream: Upstream, url: str, *, body: bytes, headers: dict, stream: bool) -> UpstreamResponse:
    """POST on the upstream's pooled connections, written and read by `UpstreamResponse`. Raises
    urllib3's errors (NewConnectionError, ConnectTimeoutError, ReadTimeoutError, ProtocolError)
    or OSError; never retries or follows redirects. Without `stream` the body is read and the
    connection is back in the pool on return; with it, the caller calls `release()` when done."""
    pool, start = _route(upstream, url)
    lines = []
    for name, value in headers.items():
        if any(c in value for c in "\r\n\0") or any(c in name for c in "\r\n\0:"):
            raise ValueError(f"invalid header {name!r} for the provider")
        lines.append(f"{name}: {value}\r\n")
    lines.append(f"Content-Length: {len(body)}\r\n\r\n")
    request = start + "".join(lines).encode("latin-1") + body
    conn = pool._get_conn()
    try:
        if conn.sock is None:
            conn.timeout = upstream.connect_timeout
            conn.connect()
        conn.sock.settimeout(upstream.read_timeout)
        # A provider may answer (an error) before reading everything sent: read that answer.
        with contextlib.suppress(BrokenPipeError):
            conn.sock.sendall(request)
        response = UpstreamResponse(pool, conn, url)
        if stream:
            response._watched = stream_watch.watch(conn.sock)
        else:
            response.data  # noqa: B018 (reads the body)
            response.release()
    except BaseException:
        conn.close()
        pool._put_conn(None)
        raise
    return response


def openai_headers(upstream: Upstream) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Accept-Encoding": "identity"}
    if upstream.api_key:
        headers["Authorization"] = f"Bearer {upstream.api_key}"
    return headers


def anthropic_headers(upstream: Upstream, client_meta) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "Accept-Encoding": "identity",
        "anthropic-version": client_meta.get("HTTP_ANTHROPIC_VERSION") or "2023-06-01",
    }
    beta = client_meta.get("HTTP_ANTHROPIC_BETA")
    if beta:
        headers["anthropic-beta"] = beta
    if upstream.api_key:
        headers["x-api-key"] = upstream.api_key
    return headers
