"""Invoiced revenue: one idempotent way in (API, CSV import, Stripe sync), a corrected invoice
replacing its entry with its history kept, and margins reckoned against it where a tenant says so."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from metering.margins import margins_between
from spendplane.mock_billing import MockBilling
from tenants.models import RevenueEntry, Tenant
from tenants.revenue import RevenueError, RevenueInput, invoiced_revenue, revenue_entry_upsert
from tenants.stripe_revenue import StripeSyncError, stripe_client, stripe_revenue_sync

pytestmark = pytest.mark.django_db

NOVEMBER = (date(2026, 11, 1), date(2026, 11, 30))


@pytest.fixture
def tenant_a(world):
    return world["alice"].tenant


@pytest.fixture
def tenant_b(world):
    return world["charlie"].tenant


def entry(tenant, external_id="in_1", amount="300.00", period=NOVEMBER, source="api", **extra) -> RevenueInput:
    return RevenueInput(
        tenant=tenant,
        source=source,
        external_id=external_id,
        period_start=period[0],
        period_end=period[1],
        amount_usd=Decimal(amount),
        **extra,
    )


# --- the upsert and the revenue of a range ---------------------------------------------------


def test_the_same_entry_again_changes_nothing_and_a_correction_keeps_its_history(tenant_a):
    first, outcome = revenue_entry_upsert(entry(tenant_a))
    assert outcome == "created"
    again, outcome = revenue_entry_upsert(entry(tenant_a))
    assert (again.pk, outcome) == (first.pk, "unchanged")
    assert again.history == []
    corrected, outcome = revenue_entry_upsert(entry(tenant_a, amount="270.00"), actor="billing")
    assert (corrected.pk, outcome) == (first.pk, "replaced")
    assert corrected.amount_usd == Decimal("270.00")
    assert [(h["amount_usd"], h["by"]) for h in corrected.history] == [("300.00", "billing")]
    assert RevenueEntry.objects.count() == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"currency": "EUR"}, "only USD"),
        ({"period": (date(2026, 11, 30), date(2026, 11, 1))}, "before it starts"),
        ({"amount": "10.001"}, "more than cents"),
        ({"external_id": " "}, "required"),
    ],
)
def test_it_refuses_an_entry_it_cannot_reckon(tenant_a, change, message):
    with pytest.raises(RevenueError, match=message):
        revenue_entry_upsert(entry(tenant_a, **change))
    assert not RevenueEntry.objects.exists()


def test_an_entry_is_spread_evenly_over_its_service_period(tenant_a, tenant_b):
    revenue_entry_upsert(entry(tenant_a, "in_nov", "300.00"))
    revenue_entry_upsert(entry(tenant_a, "cn_nov", "-30.00"))  # a credit note
    revenue_entry_upsert(entry(tenant_b, "in_q4", "920.00", period=(date(2026, 10, 1), date(2026, 12, 31))))
    assert invoiced_revenue(*NOVEMBER) == {tenant_a.pk: Decimal("270.00"), tenant_b.pk: Decimal("300.00")}
    first_ten = invoiced_revenue(date(2026, 11, 1), date(2026, 11, 10), [tenant_a.pk])
    assert first_ten == {tenant_a.pk: Decimal("90.000000000")}
    assert invoiced_revenue(date(2026, 12, 1), date(2026, 12, 31), [tenant_a.pk]) == {}


def test_a_tenant_on_invoiced_revenue_has_its_margin_reckoned_against_its_invoices(tenant_a, tenant_b):
    Tenant.objects.filter(pk__in=[tenant_a.pk, tenant_b.pk]).update(created_at=datetime(2026, 1, 1, tzinfo=UTC))
    Tenant.objects.filter(pk=tenant_a.pk).update(revenue_source="invoiced")
    revenue_entry_upsert(entry(tenant_a, "in_nov", "1234.56"))
    revenue_entry_upsert(entry(tenant_b, "in_nov_b", "5000.00"))  # b is on its plan: ignored
    margins = {m.tenant_id: m for m in margins_between(*NOVEMBER)}
    assert (margins[tenant_a.pk].revenue_source, margins[tenant_a.pk].revenue_usd) == ("invoiced", Decimal("1234.56"))
    assert (margins[tenant_b.pk].revenue_source, margins[tenant_b.pk].revenue_usd) == ("plan", Decimal("99"))


# --- the management API ---------------------------------------------------------------------


def test_posting_revenue_is_idempotent_on_source_and_external_id(api, tenant_a):
    body = {"tenant": tenant_a.pk, "source": "chargebee", "external_id": "inv-77", "period": "2026-11"}
    created = api.post("/api/v1/revenue/", {**body, "amount_usd": "450.00"}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["result"] == "created"
    assert (created.json()["period_start"], created.json()["period_end"]) == ("2026-11-01", "2026-11-30")
    again = api.post("/api/v1/revenue/", {**body, "amount_usd": "450.00"}, format="json")
    assert (again.status_code, again.json()["result"], again.json()["id"]) == (200, "unchanged", created.json()["id"])
    corrected = api.post("/api/v1/revenue/", {**body, "amount_usd": "425.00"}, format="json")
    assert (corrected.status_code, corrected.json()["result"]) == (200, "replaced")
    assert corrected.json()["amount_usd"] == "425.00"
    assert corrected.json()["history"][0]["amount_usd"] == "450.00"
    listed = api.get("/api/v1/revenue/", {"tenant": tenant_a.pk, "source": "chargebee"}).json()
    assert listed["count"] == 1
    assert api.get("/api/v1/revenue/", {"source": "stripe"}).json()["count"] == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"currency": "EUR"}, "non_field_errors"),
        ({"amount_usd": "lots"}, "amount_usd"),
        ({"period": "2026-13"}, "period"),
        ({"period": None, "period_start": "2026-11-30", "period_end": "2026-11-01"}, "non_field_errors"),
        ({"period": None}, "period_start"),
        ({"tenant": 999999}, "tenant"),
    ],
)
def test_bad_revenue_gets_a_clear_error_and_writes_nothing(api, tenant_a, change, field):
    body = {"tenant": tenant_a.pk, "source": "api", "external_id": "x", "amount_usd": "1.00", "period": "2026-11"}
    body = {k: v for k, v in {**body, **change}.items() if v is not None}
    response = api.post("/api/v1/revenue/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not RevenueEntry.objects.exists()


def test_revenue_is_for_operators_only(tenant_a, world):
    anonymous = APIClient().post("/api/v1/revenue/", {}, format="json")
    assert anonymous.status_code in (401, 403)
    tenant_key = APIClient()
    tenant_key.credentials(HTTP_AUTHORIZATION=f"Bearer {world['alice'].raw_key}")
    assert tenant_key.get("/api/v1/revenue/").status_code in (401, 403)


def test_the_tenant_api_sets_the_revenue_source(api, tenant_a):
    response = api.patch(
        f"/api/v1/tenants/{tenant_a.pk}/",
        {"revenue_source": "invoiced", "billing_customer_id": "cus_A"},
        format="json",
    )
    assert response.status_code == 200, response.content
    tenant_a.refresh_from_db()
    assert (tenant_a.revenue_source, tenant_a.billing_customer_id) == ("invoiced", "cus_A")
    assert api.patch(f"/api/v1/tenants/{tenant_a.pk}/", {"revenue_source": "guess"}, format="json").status_code == 400


# --- the CSV import ---------------------------------------------------------------------------

CSV = """tenant,external_id,amount_usd,period,description
tenant-a,INV-1,300.00,2026-11,November seats
tenant-a,CN-1,-25.50,2026-11,Refund
tenant-b,INV-2,"1,200.00",2026-11,
"""


def write(tmp_path, text: str):
    path = tmp_path / "revenue.csv"
    path.write_text(text)
    return str(path)


def test_the_csv_import_is_idempotent_and_shows_its_progress(tmp_path, tenant_a, tenant_b, capsys):
    path = write(tmp_path, CSV)
    call_command("import_revenue", path)
    out = capsys.readouterr().out
    assert "3/3 rows" in out and "3 created, 0 replaced, 0 unchanged" in out
    assert invoiced_revenue(*NOVEMBER) == {tenant_a.pk: Decimal("274.50"), tenant_b.pk: Decimal("1200.00")}
    call_command("import_revenue", path)
    assert "0 created, 0 replaced, 3 unchanged" in capsys.readouterr().out
    call_command("import_revenue", write(tmp_path, CSV.replace("-25.50", "-20.00")))
    assert "0 created, 1 replaced, 2 unchanged" in capsys.readouterr().out
    assert RevenueEntry.objects.get(external_id="CN-1").history[0]["amount_usd"] == "-25.50"


def test_a_dry_run_counts_and_writes_nothing(tmp_path, tenant_a, tenant_b, capsys):
    call_command("import_revenue", write(tmp_path, CSV), "--dry-run")
    assert "Dry run, nothing written: 3 created" in capsys.readouterr().out
    assert not RevenueEntry.objects.exists()


def test_a_file_with_a_bad_row_imports_nothing_and_names_the_line(tmp_path, tenant_a, tenant_b, capsys):
    bad = CSV + "nobody,INV-3,10.00,2026-11,\ntenant-a,INV-4,ten,2026-11,\ntenant-a,INV-5,1.00,11/2026,\n"
    with pytest.raises(CommandError, match="3 row"):
        call_command("import_revenue", write(tmp_path, bad))
    errors = capsys.readouterr().err
    assert "line 5: no tenant 'nobody'" in errors
    assert "line 6: amount 'ten' is not a number" in errors
    assert "line 7: period must be" in errors
    assert not RevenueEntry.objects.exists()
    with pytest.raises(CommandError, match="missing column"):
        call_command("import_revenue", write(tmp_path, "tenant,amount\nt,1\n"))
    with pytest.raises(CommandError, match="cannot read"):
        call_command("import_revenue", str(tmp_path / "absent.csv"))


# --- the Stripe sync --------------------------------------------------------------------------


@pytest.fixture
def billing(settings):
    server = MockBilling().start()
    settings.STRIPE_API_KEY = server.state.api_key
    settings.STRIPE_API_BASE = server.url
    settings.STRIPE_MAX_RETRIES = 0
    yield server
    server.stop()


@pytest.fixture
def stripe_world(billing, tenant_a, tenant_b):
    Tenant.objects.update(created_at=datetime(2026, 1, 1, tzinfo=UTC))
    Tenant.objects.filter(pk=tenant_a.pk).update(billing_customer_id="cus_A", revenue_source="invoiced")
    # tenant B has no billing customer id: its Stripe customer id is its external id
    paid = billing.add_invoice(
        customer="cus_A", amount_cents=30000, tax_cents=6000, period_start=NOVEMBER[0], period_end=NOVEMBER[1]
    )
    billing.add_invoice(customer="tenant-b", amount_cents=9900, period_start=NOVEMBER[0], period_end=NOVEMBER[1])
    billing.add_invoice(customer="cus_A", amount_cents=5000, status="open", period_start=date(2026, 12, 1),
                        period_end=date(2026, 12, 31))  # fmt: skip
    billing.add_invoice(customer="cus_stranger", amount_cents=100, period_start=NOVEMBER[0], period_end=NOVEMBER[1])
    billing.add_credit_note(invoice=paid, amount_cents=4500)
    return paid


def test_stripe_paid_invoices_and_credit_notes_become_revenue_and_a_rerun_changes_nothing(stripe_world, tenant_a,
                                                                                            tenant_b):  # fmt: skip
    result = stripe_revenue_sync()
    assert (result.invoices, result.credit_notes, result.created) == (3, 1, 3)
    assert result.unmatched_customers == {"cus_stranger"}
    rows = {e.external_id: e for e in RevenueEntry.objects.filter(source="stripe")}
    invoice = rows[stripe_world["id"]]
    assert (invoice.tenant_id, invoice.amount_usd) == (tenant_a.pk, Decimal("300.00"))  # tax is not revenue
    assert (invoice.period_start, invoice.period_end) == NOVEMBER
    note = next(e for e in rows.values() if e.external_id.startswith("cn_"))
    assert (note.amount_usd, note.period_start, note.period_end) == (Decimal("-45.00"), *NOVEMBER)
    assert invoiced_revenue(*NOVEMBER) == {tenant_a.pk: Decimal("255.00"), tenant_b.pk: Decimal("99.00")}
    margins = {m.tenant_id: m for m in margins_between(*NOVEMBER)}
    assert (margins[tenant_a.pk].revenue_source, margins[tenant_a.pk].revenue_usd) == ("invoiced", Decimal("255.00"))

    again = stripe_revenue_sync()
    assert (again.created, again.replaced, again.unchanged) == (0, 0, 3)


def test_a_corrected_stripe_invoice_replaces_its_entry(stripe_world, billing):
    stripe_revenue_sync()
    billing.state.credit_notes[0]["status"] = "void"
    result = stripe_revenue_sync()
    assert (result.replaced, result.unchanged) == (1, 2)
    note = RevenueEntry.objects.get(external_id=billing.state.credit_notes[0]["id"])
    assert note.amount_usd == Decimal("0.00") and note.history[0]["amount_usd"] == "-45.00"


def test_stripe_pages_are_all_read(billing, tenant_a, monkeypatch):
    from tenants import stripe_revenue

    monkeypatch.setattr(stripe_revenue, "PAGE_SIZE", 2)
    Tenant.objects.filter(pk=tenant_a.pk).update(billing_customer_id="cus_A")
    for day in range(1, 8):
        billing.add_invoice(
            customer="cus_A", amount_cents=100 * day, period_start=date(2026, 11, day), period_end=date(2026, 11, day)
        )
    result = stripe_revenue_sync()
    assert result.created == 7
    assert sum(e.amount_usd for e in RevenueEntry.objects.all()) == Decimal("28.00")
    assert sum("/v1/invoices" in r for r in billing.state.requests) == 4


@pytest.mark.parametrize("failure", ["401", "500", "503", "malformed"])
def test_a_failed_stripe_answer_writes_nothing_and_the_next_run_catches_up(stripe_world, billing, failure):
    stripe_revenue_sync()
    billing.add_invoice(customer="cus_A", amount_cents=700, period_start=NOVEMBER[0], period_end=NOVEMBER[0])
    before = sorted(RevenueEntry.objects.values_list("external_id", "amount_usd"))
    if failure == "401":
        client = stripe_client(api_key="sk_test_wrong")
    else:
        billing.fail_next(failure)
        client = None
    with pytest.raises(StripeSyncError, match="401" if failure == "401" else "Stripe"):
        stripe_revenue_sync(client=client)
    assert sorted(RevenueEntry.objects.values_list("external_id", "amount_usd")) == before
    assert stripe_revenue_sync().created == 1


def test_a_failure_on_a_later_page_writes_nothing(billing, tenant_a, monkeypatch):
    from tenants import stripe_revenue

    monkeypatch.setattr(stripe_revenue, "PAGE_SIZE", 2)
    Tenant.objects.filter(pk=tenant_a.pk).update(billing_customer_id="cus_A")
    for day in range(1, 6):
        billing.add_invoice(customer="cus_A", amount_cents=100, period_start=date(2026, 11, day),
                            period_end=date(2026, 11, day))  # fmt: skip
    original = billing.state.failures

    class FailSecondPage(list):
        def pop(self, index=-1):
            return "500" if sum("starting_after" in r for r in billing.state.requests) == 1 else ""

        def __bool__(self):
            return True

    billing.state.failures = FailSecondPage()
    with pytest.raises(StripeSyncError, match="500"):
        stripe_revenue_sync()
    assert not RevenueEntry.objects.exists()
    billing.state.failures = original
    assert stripe_revenue_sync().created == 5


def test_one_stripe_5xx_is_retried_by_the_client(stripe_world, billing, settings):
    settings.STRIPE_MAX_RETRIES = 2
    billing.fail_next("500")
    assert stripe_revenue_sync().created == 3


def test_the_sync_command_reports_and_dry_runs(stripe_world, capsys):
    call_command("sync_stripe_revenue", "--dry-run", "--since", "2026-01-01")
    captured = capsys.readouterr()
    assert "Dry run, nothing written: 3 paid invoice(s), 1 credit note(s): 3 created" in captured.out
    assert "no tenant for Stripe customer cus_stranger" in captured.err
    assert not RevenueEntry.objects.exists()
    call_command("sync_stripe_revenue")
    assert RevenueEntry.objects.count() == 3
    with pytest.raises(CommandError, match="--since"):
        call_command("sync_stripe_revenue", "--since", "yesterday")


def test_a_non_usd_invoice_is_skipped_and_said(billing, tenant_a):
    Tenant.objects.filter(pk=tenant_a.pk).update(billing_customer_id="cus_A")
    billing.add_invoice(customer="cus_A", amount_cents=100, currency="eur", period_start=NOVEMBER[0],
                        period_end=NOVEMBER[1])  # fmt: skip
    result = stripe_revenue_sync()
    assert result.created == 0 and "only USD" in result.errors[0]


def test_the_hourly_job_does_nothing_without_a_key(settings):
    from tenants.tasks import stripe_revenue_sync_task

    settings.STRIPE_API_KEY = ""
    assert stripe_revenue_sync_task.apply().get().startswith("skipped")
