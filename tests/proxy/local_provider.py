"""Providers on a local port for the HTTP client's and the gateway's tests."""

from __future__ import annotations

import socket
import ssl
import threading
import time

from metering.routing import Upstream


def upstream(url: str, read_timeout: float = 5) -> Upstream:
    """A route to the provider at `url`, as the gateway's routing would build it."""
    return Upstream(
        name="local-provider",
        kind="openai",
        base_url=url,
        api_key="",
        upstream_model="",
        connect_timeout=2,
        read_timeout=read_timeout,
    )


class LocalProvider:
    """Listens on a local port (TLS with a server context) and counts the connections it accepts;
    `handle(conn)` serves each on a thread of its own."""

    def __init__(self, *, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.accepted = 0
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.listener.getsockname()[1]}/v1"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            if self.tls:
                try:
                    conn = self.tls.wrap_socket(conn, server_side=True)
                except ssl.SSLError:  # the client refused the certificate
                    conn.close()
                    continue
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.listener.close()


class ScriptedProvider(LocalProvider):
    """For each request it reads (headers and a Content-Length body) it sends the next answer of
    `answers`: a list of byte pieces, sent with a pause between them so that they arrive as
    separate reads. `None` as a piece closes the connection there."""

    def __init__(self, answers: list[list[bytes | None]], *, tls: ssl.SSLContext | None = None, pause=0.02):
        self.answers = list(answers)
        self.requests: list[bytes] = []
        self.pause = pause
        super().__init__(tls=tls)

    def handle(self, conn) -> None:
        with conn:
            data = b""
            while self.answers:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, data = data.partition(b"\r\n\r\n")
                length = int(
                    next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))[15:]
                )
                while len(data) < length:
                    data += conn.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + data[:length])
                data = data[length:]
                for piece in self.answers.pop(0):
                    if piece is None:
                        return
                    conn.sendall(piece)
                    time.sleep(self.pause)
