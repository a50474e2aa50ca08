"""A bundled billing server for the demo and the tests: the part of Stripe's API the revenue sync
reads (`GET /v1/invoices`, `GET /v1/credit_notes`), in Stripe's list shape with cursor paging
(`limit`, `starting_after`, `has_more`), its `created[gte]` and `status` filters, Bearer-key auth
and Stripe-shaped errors. `fail_next(status, times)` makes the next answers fail (401, 500, or
"malformed" for a body that is not JSON), for tests of a sync that must write nothing.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from .mock_upstream import LocalServer


def _timestamp(day: date) -> int:
    return int(datetime.combine(day, datetime.min.time(), tzinfo=UTC).timestamp())


class BillingState:
    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.invoices: list[dict] = []
        self.credit_notes: list[dict] = []
        self.failures: list[str] = []
        self.requests: list[str] = []
        self.lock = threading.Lock()


class MockBilling(LocalServer):
    """The server in a background thread, with helpers that add realistic Stripe objects."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, api_key: str = "sk_test_spendplane") -> None:
        super().__init__(host, port, BillingHandler, BillingState(api_key))

    def fail_next(self, status: str, times: int = 1) -> None:
        with self.state.lock:
            self.state.failures.extend([status] * times)

    def add_invoice(
        self,
        *,
        customer: str,
        amount_cents: int,
        period_start: date,
        period_end: date,
        tax_cents: int = 0,
        status: str = "paid",
        currency: str = "usd",
        invoice_id: str | None = None,
        created: int | None = None,
    ) -> dict:
        """A subscription invoice whose one line covers [period_start, period_end] (inclusive days)."""
        with self.state.lock:
            number = len(self.state.invoices) + 1
            start = _timestamp(period_start)
            end = _timestamp(period_end) + 86400  # Stripe's period ends where the next one starts
            invoice = {
                "id": invoice_id or f"in_mock{number:05d}",
                "object": "invoice",
                "number": f"MOCK-{number:04d}",
                "customer": customer,
                "status": status,
                "currency": currency,
                "created": created or int(time.time()),
                "period_start": start,
                "period_end": start,
                "subtotal": amount_cents,
                "tax": tax_cents,
                "total_excluding_tax": amount_cents,
                "total": amount_cents + tax_cents,
                "amount_paid": amount_cents + tax_cents if status == "paid" else 0,
                "lines": {
                    "object": "list",
                    "has_more": False,
                    "data": [
                        {
                            "id": f"il_mock{number:05d}",
                            "object": "line_item",
                            "amount": amount_cents,
                            "currency": currency,
                            "period": {"start": start, "end": end},
                        }
                    ],
                },
            }
            self.state.invoices.append(invoice)
            return invoice

    def add_credit_note(self, *, invoice: dict, amount_cents: int, status: str = "issued") -> dict:
        with self.state.lock:
            number = len(self.state.credit_notes) + 1
            note = {
                "id": f"cn_mock{number:05d}",
                "object": "credit_note",
                "number": f"MOCK-CN-{number:04d}",
                "customer": invoice["customer"],
                "invoice": invoice["id"],
                "status": status,
                "currency": invoice["currency"],
                "created": int(time.time()),
                "subtotal": amount_cents,
                "total_excluding_tax": amount_cents,
                "total": amount_cents,
            }
            self.state.credit_notes.append(note)
            return note


class BillingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: BillingState

    def log_message(self, format, *args) -> None:
        pass

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Request-Id", f"req_mock{time.monotonic_ns()}")
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, kind: str, message: str) -> None:
        self._send(status, json.dumps({"error": {"type": kind, "message": message}}).encode())

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        with self.state.lock:
            self.state.requests.append(self.path)
            failure = self.state.failures.pop(0) if self.state.failures else ""
        if self.headers.get("Authorization") != f"Bearer {self.state.api_key}":
            return self._error(401, "invalid_request_error", "Invalid API Key provided.")
        if failure == "malformed":
            return self._send(200, b'{"object": "list", "data": [')
        if failure:
            return self._error(int(failure), "api_error", "Something went wrong on Stripe's end (mock).")
        kinds = {"/v1/invoices": self.state.invoices, "/v1/credit_notes": self.state.credit_notes}
        if url.path not in kinds:
            return self._error(404, "invalid_request_error", f"Unrecognized request URL (GET: {url.path}).")
        query = {name: values[-1] for name, values in parse_qs(url.query).items()}
        with self.state.lock:
            objects = [dict(o) for o in kinds[url.path]]
        if "status" in query:
            objects = [o for o in objects if o.get("status") == query["status"]]
        if "created[gte]" in query:
            objects = [o for o in objects if o["created"] >= int(query["created[gte]"])]
        objects.sort(key=lambda o: (-o["created"], o["id"]))  # Stripe lists newest first
        if "starting_after" in query:
            ids = [o["id"] for o in objects]
            if query["starting_after"] not in ids:
                return self._error(400, "invalid_request_error", "No such object: starting_after")
            objects = objects[ids.index(query["starting_after"]) + 1 :]
        limit = max(1, min(100, int(query.get("limit", 10))))
        page = {"object": "list", "url": url.path, "has_more": len(objects) > limit, "data": objects[:limit]}
        self._send(200, json.dumps(page).encode())
