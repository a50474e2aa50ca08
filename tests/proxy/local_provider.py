"""A provider on a local port for the HTTP client's tests."""

from __future__ import annotations

import socket
import ssl
import threading


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
