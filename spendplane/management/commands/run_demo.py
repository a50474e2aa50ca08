"""`make run`: the mock upstream, a real server, demo tenants and traffic, and how to call it."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time

import requests
from django.core.management.base import BaseCommand
from django.utils import timezone

from metering.rollups import SETTLE_LAG, rollup_usage
from spendplane.mock_billing import MockBilling
from spendplane.mock_upstream import MockUpstream
from tenants.demo import seed_demo, seed_demo_billing

FEATURES = ["chat-assistant", "ticket-summary", "smart-search"]
# What a SaaS product's users ask, with a pasted note of varying length so token counts vary.
DEMO_PROMPTS = [
    "Draft a friendly reply to this customer.",
    "Which plan should this customer upgrade to?",
    "Summarise the note below in two sentences.",
    "Suggest three subject lines for this email.",
    "What is the customer asking for?",
    "Turn this into a checklist for the support team.",
]
DEMO_NOTES = [
    "The customer signed up in March and uses the reporting feature every week.",
    "They asked about exporting invoices to CSV.",
    "Their team grew from five to twelve seats this quarter.",
    "Last month they opened two tickets about slow dashboards.",
    "They would like single sign-on before renewing.",
    "The renewal date is the first of next month.",
]


SERVED_USAGE_FILE = ".cache/mock-served-usage.json"


class Command(BaseCommand):
    help = "Run the demo: mock upstream, seeded tenants, a gunicorn server and some traffic."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("SPENDPLANE_PORT", 8000)))
        parser.add_argument("--mock-port", type=int, default=int(os.environ.get("SPENDPLANE_MOCK_PORT", 8100)))
        parser.add_argument(
            "--billing-port",
            type=int,
            default=int(os.environ.get("SPENDPLANE_BILLING_PORT", 8101)),
            help="The bundled Stripe-shaped billing server (invoiced revenue for the demo tenant acme).",
        )
        parser.add_argument("--requests", type=int, default=60, help="Demo requests to send at start.")
        parser.add_argument("--no-wait", action="store_true", help="Stop after the demo traffic (for scripts).")

    def handle(self, *args, **options):
        mock = MockUpstream("127.0.0.1", options["mock_port"], latency_ms=40).start()
        # What the mock served is kept beside the demo database, so its usage reports cover earlier runs.
        os.makedirs(".cache", exist_ok=True)
        mock.state.served.load(SERVED_USAGE_FILE)
        self.mock = mock
        keys = seed_demo()
        billing = MockBilling("127.0.0.1", options["billing_port"]).start()
        self.billing_url = billing.url
        self.mock_url = mock.url
        self.stdout.write(f"Invoiced revenue for acme from the bundled billing server: {seed_demo_billing(billing)}")
        master_key = os.environ.get("SPENDPLANE_MASTER_KEY") or "dev-master-key"
        url = f"http://127.0.0.1:{options['port']}"
        env = {
            **os.environ,
            "OPENAI_BASE_URL": f"{mock.url}/v1",
            "ANTHROPIC_BASE_URL": mock.url,
            "OPENAI_API_KEY": "mock-key",
            "ANTHROPIC_API_KEY": "mock-key",
            "SPENDPLANE_BIND": f"127.0.0.1:{options['port']}",
            "WEB_CONCURRENCY": os.environ.get("WEB_CONCURRENCY", "1"),
            "SPENDPLANE_MASTER_KEY": master_key,
            # the bundled upstream also answers the providers' usage reports, from what it served
            "OPENAI_ADMIN_KEY": "mock-admin-key",
            "ANTHROPIC_ADMIN_KEY": "mock-admin-key",
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "spendplane/gunicorn.conf.py", "spendplane.wsgi"], env=env
        )
        try:
            self._wait_until_up(url)
            sent = self._demo_traffic(url, keys, options["requests"])
            # No beat runs in the embedded default: roll the demo traffic up now, then every minute.
            rollup_usage(now=timezone.now() + SETTLE_LAG)
            mock.state.served.save(SERVED_USAGE_FILE)
            self._reconcile(env)
            threading.Thread(target=self._keep_rolling_up, daemon=True).start()
            self._explain(url, keys["acme"], master_key, sent)
            if not options["no_wait"]:
                server.wait()
        except KeyboardInterrupt:
            pass
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
            mock.state.served.save(SERVED_USAGE_FILE)
            mock.stop()
            billing.stop()

    def _reconcile(self, env: dict) -> None:
        """Today's provider reports against the ledger, as the daily job does for past days."""
        time.sleep(1)  # the ledger writer's last batch
        day = timezone.now().date().isoformat()
        subprocess.run([sys.executable, "manage.py", "reconcile_usage", "--day", day], env=env, check=False)

    def _keep_rolling_up(self) -> None:
        while True:
            time.sleep(60)
            self.mock.state.served.save(SERVED_USAGE_FILE)
            try:
                rollup_usage()
            except Exception as exc:  # the demo goes on; say why the dashboards lag
                self.stderr.write(f"rollup failed: {exc}")

    def _wait_until_up(self, url: str) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise SystemExit("The server did not come up within 30 s; see its output above.")

    def _demo_traffic(self, url: str, keys: dict, count: int) -> int:
        rng = random.Random(7)
        session = requests.Session()
        sent = 0
        for i in range(count):
            tenant = rng.choice(list(keys))
            headers = {
                "Authorization": f"Bearer {keys[tenant]}",
                "X-Spendplane-Feature": rng.choice(FEATURES),
                "X-Spendplane-User": f"user-{rng.randint(1, 6)}",
            }
            if i % 10 == 9:
                body = {
                    "model": "claude-3-5-haiku-latest",
                    "max_tokens": 40,
                    "messages": [{"role": "user", "content": f"Summarise ticket #{i}"}],
                }
                session.post(f"{url}/v1/messages", json=body, headers=headers, timeout=10)
            elif i % 10 == 4:
                body = {
                    "model": "gpt-4.1-mini",
                    "instructions": "You are a support assistant.",
                    "input": _demo_prompt(rng),
                    "stream": i % 20 == 4,
                }
                session.post(f"{url}/v1/responses", json=body, headers=headers, timeout=10)
            else:
                body = {
                    "model": rng.choice(["gpt-4o-mini", "gpt-4o", "gpt-4.1-mini"]),
                    "stream": i % 3 == 0,
                    "messages": [{"role": "user", "content": _demo_prompt(rng)}],
                }
                session.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=10)
            sent += 1
        return sent

    def _explain(self, url: str, key: str, master_key: str, sent: int) -> None:
        body = '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}'
        self.stdout.write(self.style.SUCCESS(f"\nSpendplane is running at {url} (sent {sent} demo requests)\n"))
        self.stdout.write(
            f"""  Demo API key (tenant 'acme'): {key}
  Admin:    {url}/admin/  (user admin, password admin)
  Margins:  {url}/dashboard/  (user finance / finance, or support / support)
  Revenue:  acme's margin is on its invoice (Stripe-shaped server at {self.billing_url});
            the others on their plan's price. curl -H 'Authorization: Bearer {master_key}' {url}/api/v1/revenue/
  Reconciliation: {url}/dashboard/reconciliation/ (today's provider reports against the ledger).
            Make the provider bill traffic the gateway never saw, then reconcile again:
            curl -X POST {self.mock_url}/_mock/usage \\
              -d '{{"unseen": [{{"model": "gpt-4.1-nano", "requests": 5, "input_tokens": 5000}}]}}'
            OPENAI_ADMIN_KEY=mock-admin-key OPENAI_BASE_URL={self.mock_url}/v1 ANTHROPIC_ADMIN_KEY=mock-admin-key \\
              ANTHROPIC_BASE_URL={self.mock_url} .venv/bin/python manage.py reconcile_usage --day $(date -u +%F)
  API docs: {url}/api/docs/
  Ledger:   curl -H 'Authorization: Bearer {master_key}' {url}/api/v1/usage/events/

  Try it with curl:
    curl {url}/v1/chat/completions -H 'Authorization: Bearer {key}' \\
      -H 'Content-Type: application/json' -H 'X-Spendplane-User: me' -d '{body}'

  Or with the OpenAI SDK:
    from openai import OpenAI
    client = OpenAI(base_url='{url}/v1', api_key='{key}')
    reply = client.chat.completions.create(model='gpt-4o-mini', messages=[{{'role': 'user', 'content': 'Hi'}}])
    print(reply.choices[0].message.content, reply.usage)

Press Ctrl-C to stop."""
        )


def _demo_prompt(rng: random.Random) -> str:
    notes = " ".join(rng.choice(DEMO_NOTES) for _ in range(rng.randint(1, 30)))
    return f"{rng.choice(DEMO_PROMPTS)}\n\n{notes}"
