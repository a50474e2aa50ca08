"""The finance and support console in a real browser (Debian's Chromium driven by Playwright).

Screenshots of each page land in test-artifacts/.
"""

from __future__ import annotations

import os
import shutil
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from metering.models import UsageEvent
from metering.pricing import Rates, Usage
from metering.rollups import rollup_usage
from metering.services import LedgerEntry, usage_record
from tenants.models import CapChange, Plan, Tenant
from tenants.revenue import RevenueInput, revenue_entry_upsert
from tenants.roles import roles_setup
from tests.conftest import MASTER_KEY

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="needs Debian's chromium (apt-get install chromium)"),
]


@pytest.fixture
def browser():
    # Playwright's sync API runs an event loop in this thread; the ORM calls in the test are still sync.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        yield browser
        browser.close()


def spend(tenant, request_id, *, tokens, when):
    usage_record(
        entry=LedgerEntry(
            request_id=request_id,
            endpoint="chat.completions",
            created_at=when,
            status_code=200,
            latency_ms=40,
            tenant_id=tenant.pk,
            model="gpt-4o",
            feature="assistant",
            end_user=f"user-{request_id[-1]}",
            usage=Usage(prompt_tokens=tokens, completion_tokens=tokens // 4),
            usage_source="provider",
            rates=Rates(Decimal("2.5"), Decimal("10"), Decimal("1.25"), Decimal("2.5"), "test"),
        )
    )


@pytest.fixture
def customers(db):
    cheap = Plan.objects.create(name="Starter", monthly_price_usd=Decimal("0.30"), monthly_budget_usd=Decimal("5"))
    rich = Plan.objects.create(name="Enterprise", monthly_price_usd=Decimal("900"))
    now = timezone.now()
    created = now - timedelta(days=70)
    tenants = {}
    for name, plan, tokens in (("Acme", rich, 400_000), ("Globex", cheap, 300_000), ("Initech", rich, 50_000)):
        tenant = Tenant.objects.create(name=name, external_id=name.lower(), plan=plan)
        Tenant.objects.filter(pk=tenant.pk).update(created_at=created)
        for i in range(4):
            spend(tenant, f"{name}-now-{i}", tokens=tokens, when=now - timedelta(minutes=5 + i))
            spend(tenant, f"{name}-old-{i}", tokens=tokens // 2, when=now.replace(day=1) - timedelta(days=3, hours=i))
        tenants[name] = tenant
    rollup_usage(now=now + timedelta(minutes=1))
    groups = roles_setup()
    for role in ("finance", "support"):
        user = User.objects.create_user(role, password=f"{role}-pw", is_staff=True)
        user.groups.add(groups[role])
    return tenants


def log_in(page, base: str, role: str, next_url: str) -> None:
    page.goto(f"{base}/admin/login/?next={next_url}")
    page.fill("#id_username", role)
    page.fill("#id_password", f"{role}-pw")
    page.click("input[type=submit]")
    page.wait_for_load_state("networkidle")


def api_margins(period: str) -> dict[int, dict]:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {MASTER_KEY}")
    return {row["tenant"]: row for row in client.get("/api/v1/margins/", {"period": period}).json()["results"]}


def test_finance_switches_period_sorts_and_drills_into_a_tenant(live_server, browser, customers):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    base = live_server.url
    log_in(page, base, "finance", "/dashboard/")
    assert page.url.startswith(f"{base}/dashboard/")
    period = timezone.now().strftime("%Y-%m")
    expected = api_margins(period)
    globex = customers["Globex"]
    row = page.locator(f"tr[data-tenant='{globex.pk}']")
    assert Decimal(row.locator("td[data-col=cost]").get_attribute("data-value")) == Decimal(
        expected[globex.pk]["cost_usd"]
    )
    assert Decimal(row.locator("td[data-col=margin]").get_attribute("data-value")) == Decimal(
        expected[globex.pk]["margin_usd"]
    )
    assert row.locator(".flag").inner_text() == "loss"  # $0.30 of revenue against dollars of AI cost
    page.screenshot(path=str(ARTIFACTS / "dashboard-margins.png"), full_page=True)

    # sort by margin, ascending then descending, in place (HTMX) and in the URL
    page.click("th a[data-sort=margin]")
    page.wait_for_function("() => location.search.includes('sort=')")
    page.wait_for_load_state("networkidle")
    names = page.locator("#margin-table tbody tr td:first-child a").all_inner_texts()
    margins = [Decimal(expected[t.pk]["margin_usd"]) for t in sorted(customers.values(), key=lambda t: t.name)]
    assert names[0] == max(customers.values(), key=lambda t: Decimal(expected[t.pk]["margin_usd"])).name
    assert len(names) == len(margins)
    page.click("th a[data-sort=margin]")
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(300)
    assert page.locator("#margin-table tbody tr td:first-child a").first.inner_text() == "Globex"

    # switch to last month: the table follows, with the API's numbers for that month
    previous = (timezone.now().replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    page.fill("input[name=period]", previous)
    page.dispatch_event("input[name=period]", "change")
    page.wait_for_function(f"() => location.search.includes('period={previous}')")
    page.wait_for_load_state("networkidle")
    last_month = api_margins(previous)
    acme = customers["Acme"]
    cell = page.locator(f"tr[data-tenant='{acme.pk}'] td[data-col=cost]")
    assert Decimal(cell.get_attribute("data-value")) == Decimal(last_month[acme.pk]["cost_usd"])

    # drill into a tenant: its page shows the same numbers as the API
    page.goto(f"{base}/dashboard/?period={period}")
    page.click(f"tr[data-tenant='{acme.pk}'] td:first-child a")
    page.wait_for_load_state("networkidle")
    assert Decimal(page.get_attribute("#cost", "data-value")) == Decimal(expected[acme.pk]["cost_usd"])
    assert Decimal(page.get_attribute("#revenue", "data-value")) == Decimal(expected[acme.pk]["revenue_usd"])
    assert page.locator("#recent-requests tr").count() == 1 + 8
    assert page.locator("svg rect").count() >= 28
    page.screenshot(path=str(ARTIFACTS / "dashboard-tenant.png"), full_page=True)
    page.goto(f"{base}/dashboard/overview/")
    assert page.inner_text("#requests-today") == str(4 * 3)
    page.screenshot(path=str(ARTIFACTS / "dashboard-overview.png"), full_page=True)


def test_every_dashboard_url_works_without_javascript(live_server, browser, customers):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    log_in(page, live_server.url, "finance", "/dashboard/")
    page.goto(f"{live_server.url}/dashboard/?sort=name&q=glob")
    names = page.locator("#margin-table tbody tr td:first-child a").all_inner_texts()
    assert names == ["Globex"]


def test_support_edits_a_cap_in_the_admin_and_finance_cannot(live_server, browser, customers):
    acme = customers["Acme"]
    support = browser.new_page()
    log_in(support, live_server.url, "support", f"/admin/tenants/tenant/{acme.pk}/change/")
    support.fill("#id_monthly_budget_usd", "42.5")
    support.click("input[name=_continue]")
    support.wait_for_load_state("networkidle")
    assert "Cap history" in support.content()
    assert support.locator("text=support").first.is_visible()
    support.screenshot(path=str(ARTIFACTS / "admin-tenant-support.png"), full_page=True)
    change = CapChange.objects.get(tenant=acme)
    assert (change.actor_label, change.after) == ("support", {"monthly_budget_usd": "42.5"})

    finance = browser.new_context().new_page()
    log_in(finance, live_server.url, "finance", f"/admin/tenants/tenant/{acme.pk}/change/")
    assert finance.locator("input[name=_save]").count() == 0
    assert finance.locator("#id_monthly_budget_usd").count() == 0  # read-only view
    finance.screenshot(path=str(ARTIFACTS / "admin-tenant-finance.png"), full_page=True)


def test_figures_are_live_to_the_last_request_and_say_how_old_they_are(live_server, browser, customers, settings):
    settings.SPENDPLANE_DASHBOARD_CACHE_SECONDS = 1
    acme = customers["Acme"]
    page = browser.new_page()
    log_in(page, live_server.url, "finance", f"/dashboard/tenants/{acme.pk}/")
    before = Decimal(page.get_attribute("#cost", "data-value"))
    assert "Live to the last request" in page.inner_text(".as-of")

    spend(acme, "Acme-just-now-9", tokens=80_000, when=timezone.now())  # no rollup runs after it
    # The fixture rolled up "a minute from now": this row is recorded after that watermark.
    UsageEvent.objects.filter(request_id="Acme-just-now-9").update(recorded_at=timezone.now() + timedelta(minutes=2))
    page.wait_for_timeout(1100)
    page.reload()
    after = Decimal(page.get_attribute("#cost", "data-value"))
    period = timezone.now().strftime("%Y-%m")
    assert after == Decimal(api_margins(period)[acme.pk]["cost_usd"]) > before
    assert after - before == Rates(Decimal("2.5"), Decimal("10"), Decimal("1.25"), Decimal("2.5"), "t").cost_for(
        Usage(prompt_tokens=80_000, completion_tokens=20_000)
    )
    page.goto(f"{live_server.url}/dashboard/?period={period}")
    cell = page.locator(f"tr[data-tenant='{acme.pk}'] td[data-col=cost]")
    assert Decimal(cell.get_attribute("data-value")) == after
    assert page.locator("#margin-table .as-of").get_attribute("data-as-of")


def test_finance_sees_invoiced_revenue_and_unit_economics(live_server, browser, customers):
    acme = customers["Acme"]
    Tenant.objects.filter(pk=acme.pk).update(revenue_source="invoiced")
    today = timezone.now().date()
    revenue_entry_upsert(
        RevenueInput(
            tenant=acme,
            source="stripe",
            external_id="in_acme_this_month",
            period_start=today.replace(day=1),
            period_end=today.replace(day=1),  # billed on the first: all of it is revenue to date
            amount_usd=Decimal("1234.00"),
        )
    )
    period = timezone.now().strftime("%Y-%m")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {MASTER_KEY}")
    expected = {
        row["tenant"]: row
        for row in client.get("/api/v1/margins/", {"period": period, "by": "feature"}).json()["results"]
    }
    assert expected[acme.pk]["revenue_source"] == "invoiced"
    assert Decimal(expected[acme.pk]["revenue_usd"]) == Decimal("1234.00")

    page = browser.new_page(viewport={"width": 1400, "height": 900})
    log_in(page, live_server.url, "finance", f"/dashboard/?period={period}")
    revenue = page.locator(f"tr[data-tenant='{acme.pk}'] td[data-col=revenue]")
    assert revenue.get_attribute("data-source") == "invoiced"
    assert Decimal(revenue.get_attribute("data-value")) == Decimal("1234.00")
    assert revenue.locator(".badge").inner_text() == "inv."
    initech = page.locator(f"tr[data-tenant='{customers['Initech'].pk}'] td[data-col=revenue]")
    assert initech.get_attribute("data-source") == "plan"

    page.click(f"tr[data-tenant='{acme.pk}'] td:first-child a")
    page.wait_for_load_state("networkidle")
    assert "invoiced" in page.inner_text("#revenue-source")
    row = expected[acme.pk]
    assert page.inner_text("#active-users") == str(row["active_users"]) == "4"
    assert Decimal(page.get_attribute("#cost-per-user", "data-value")) == Decimal(row["cost_per_active_user_usd"])
    assert Decimal(page.get_attribute("#cost-per-request", "data-value")) == Decimal(row["cost_per_request_usd"])
    # The projection moves with the clock between the API call and the page: the same to a cent.
    projected = Decimal(page.get_attribute("#projected-margin", "data-value"))
    assert abs(projected - Decimal(row["projected_margin_usd"])) < Decimal("0.01")
    assert page.locator("#burn-chart polyline").count() == 3
    feature = page.locator("#by-feature tr[data-feature=assistant] td")
    assert Decimal(feature.nth(3).get_attribute("data-value")) == Decimal(row["by_feature"][0]["cost_usd"])
    page.screenshot(path=str(ARTIFACTS / "dashboard-tenant-unit-economics.png"), full_page=True)


def test_finance_finds_the_days_a_providers_bill_does_not_match_and_the_ledger_rows_behind_them(
    live_server, browser, customers
):
    from metering.provider_usage import Report, report_store
    from metering.reconciliation import reconcile_usage

    day = timezone.now().date()
    acme = customers["Acme"]
    UsageEvent.objects.filter(tenant=acme).update(provider="openai-default")
    carried = UsageEvent.objects.filter(tenant=acme, created_at__date=day, usage_source="provider")
    report = Report("csv")
    figures = report.at(day, "gpt-4o-2024-08-06")
    figures.requests = carried.count()
    figures.input_tokens = sum(e.prompt_tokens for e in carried)
    figures.output_tokens = sum(e.completion_tokens for e in carried)
    unseen = report.at(day, "gpt-4.1-nano")
    unseen.requests, unseen.input_tokens, unseen.output_tokens = 3, 3000, 300
    report_store("openai-default", day, day, report)
    reconcile_usage(day, fetch=False)

    page = browser.new_page(viewport={"width": 1400, "height": 900})
    log_in(page, live_server.url, "finance", "/dashboard/reconciliation/")
    summary = page.locator(f"#reconciliation-days tr[data-day='{day.isoformat()}'][data-provider='openai-default']")
    assert summary.locator("td[data-col=not-matching]").inner_text() == "1"
    capture = Decimal(summary.locator("td[data-col=capture]").get_attribute("data-value"))
    assert Decimal("0") < capture < Decimal("1")
    rows = page.locator("#reconciliation-rows tr[data-status]")
    assert rows.count() == 1
    assert rows.first.get_attribute("data-model") == "gpt-4.1-nano"
    assert rows.first.get_attribute("data-status") == "missing_in_ledger"
    page.screenshot(path=str(ARTIFACTS / "dashboard-reconciliation.png"), full_page=True)

    page.select_option("select[name=status]", "match")
    page.wait_for_function("() => location.search.includes('status=match')")
    page.wait_for_load_state("networkidle")
    matched = page.locator("#reconciliation-rows tr[data-status=match]")
    assert matched.first.get_attribute("data-model") == "gpt-4o-2024-08-06"
    matched.first.locator("a.ledger-link").click()
    page.wait_for_load_state("networkidle")
    assert "provider=openai-default" in page.url and "model=gpt-4o" in page.url
    assert page.locator("text=Acme-now-0").count() >= 1  # the API page lists the rows behind it
