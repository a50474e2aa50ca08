"""Dashboard response times on a large ledger: run after rollup_scale.py on the same database.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/spendplane_bench python bench/dashboard_speed.py

Times each page cold (cache cleared) and warm (cached), median of several requests, through
Django's test client (no network in the way), logged in as a finance user.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spendplane.settings")


def main() -> None:
    import subprocess

    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, check=True)
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.cache import cache
    from django.test import Client
    from django.test.utils import setup_test_environment

    from metering.models import UsageEvent, UsageRollup
    from tenants.models import Tenant
    from tenants.roles import roles_setup

    setup_test_environment()
    user, _ = User.objects.get_or_create(username="bench-finance", defaults={"is_staff": True})
    user.groups.add(roles_setup()["finance"])
    client = Client()
    client.force_login(user)
    busiest = Tenant.objects.filter(external_id__startswith="scale-").first() or Tenant.objects.first()
    pages = {
        "margins": "/dashboard/",
        "margins sorted + search": "/dashboard/?sort=margin&q=scale%201",
        "margins (HTMX partial)": "/dashboard/?sort=-change",
        "tenant page": f"/dashboard/tenants/{busiest.pk}/",
        "overview": "/dashboard/overview/",
    }
    print(
        f"ledger rows {UsageEvent.objects.count():,}, rollup rows {UsageRollup.objects.count():,}, "
        f"tenants {Tenant.objects.count():,}"
    )
    print(f"{'page':28} {'cold ms':>9} {'warm p50 ms':>12} {'warm max ms':>12}")
    for name, url in pages.items():
        headers = {"HTTP_HX_REQUEST": "true"} if "HTMX" in name else {}
        cold = []
        for _ in range(3):
            cache.clear()
            started = time.perf_counter()
            assert client.get(url, **headers).status_code == 200
            cold.append((time.perf_counter() - started) * 1000)
        warm = []
        for _ in range(15):
            started = time.perf_counter()
            client.get(url, **headers)
            warm.append((time.perf_counter() - started) * 1000)
        print(f"{name:28} {statistics.median(cold):9.0f} {statistics.median(warm):12.1f} {max(warm):12.1f}")


if __name__ == "__main__":
    main()
