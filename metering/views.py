"""Finance and support dashboards (HTMX partials; every URL also works without JavaScript)."""

from __future__ import annotations

import csv

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from tenants.access import access_tenant

from . import dashboards

DASHBOARD_PERMISSION = "metering.view_margins"
PAGE_SIZE = 25
UPLOAD_LIMIT_BYTES = 5_000_000
SORT_COLUMNS = [
    ("revenue", "Revenue"),
    ("cost", "AI cost"),
    ("margin", "Margin"),
    ("margin_pct", "Margin %"),
    ("change", "Cost change"),
    ("budget", "Spend vs budget"),
    ("cost_share", "Cost / revenue"),
    ("cost_per_user", "Per user"),
    ("projected_margin", "Projected margin"),
]


def _dashboard(view):
    return login_required(permission_required(DASHBOARD_PERMISSION, raise_exception=True)(view))


def _template(request, page: str, partial: str) -> str:
    return f"{page}#{partial}" if request.htmx and not request.htmx.boosted else page


@_dashboard
def margins(request):
    period = dashboards.valid_period(request.GET.get("period"))
    q = request.GET.get("q", "").strip()[:100]
    sort = request.GET.get("sort", "-cost")
    loss_only = request.GET.get("loss") == "1"
    table, as_of = dashboards.margin_table(period)
    rows = dashboards.filter_and_sort(table, q=q, loss_only=loss_only, sort=sort)
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "period": period,
        "previous": dashboards.previous_period(period),
        "q": q,
        "sort": sort,
        "loss_only": loss_only,
        "page": page,
        "sort_columns": SORT_COLUMNS,
        "as_of": as_of,
        "cache_seconds": settings.SPENDPLANE_DASHBOARD_CACHE_SECONDS,
        "totals": {
            "revenue": sum(r.revenue for r in rows),
            "cost": sum(r.cost for r in rows),
            "margin": sum(r.margin for r in rows),
            "count": len(rows),
        },
    }
    return render(request, _template(request, "metering/margins.html", "margin-table"), context)


@_dashboard
def margins_csv(request):
    period = dashboards.valid_period(request.GET.get("period"))
    rows = dashboards.filter_and_sort(
        dashboards.margin_rows(period), q=request.GET.get("q", ""), loss_only=request.GET.get("loss") == "1"
    )
    response = HttpResponse(content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="margins-{period}.csv"'
    writer = csv.writer(response)
    writer.writerow(
        [
            "tenant",
            "name",
            "plan",
            "revenue_usd",
            "cost_usd",
            "margin_usd",
            "margin_pct",
            "previous_cost_usd",
            "change_pct",
            "budget_usd",
            "budget_used_pct",
            "requests",
            "revenue_source",
            "active_users",
            "cost_per_active_user_usd",
            "cost_share_pct",
            "projected_margin_usd",
        ]
    )
    for r in rows:
        writer.writerow(
            [
                r.tenant_id,
                r.name,
                r.plan,
                r.revenue,
                r.cost,
                r.margin,
                r.margin_pct,
                r.previous_cost,
                r.change_pct,
                r.budget,
                r.budget_used_pct,
                r.requests,
                r.revenue_source,
                r.active_users,
                r.cost_per_active_user,
                r.cost_share_pct,
                r.projected_margin,
            ]
        )
    return response


@_dashboard
def tenant(request, pk: int):
    tenant = access_tenant(request.user, pk)
    period = dashboards.valid_period(request.GET.get("period"))
    detail = dashboards.tenant_detail(tenant, period)
    context = {
        "tenant": tenant,
        "period": period,
        "detail": detail,
        "bars": dashboards.chart_bars(detail["series"]),
        "burn": dashboards.burn_chart(detail["series"], detail["margin"]),
        "requests": dashboards.recent_requests(tenant),
        "can_edit_caps": request.user.has_perm("tenants.change_tenant"),
        "cache_seconds": settings.SPENDPLANE_DASHBOARD_CACHE_SECONDS,
    }
    return render(request, "metering/tenant.html", context)


@_dashboard
def tenant_requests(request, pk: int):
    tenant = access_tenant(request.user, pk)
    return render(
        request,
        "metering/tenant.html#recent-requests",
        {"tenant": tenant, "requests": dashboards.recent_requests(tenant)},
    )


@_dashboard
def overview(request):
    context = {"o": dashboards.overview(), "cache_seconds": settings.SPENDPLANE_DASHBOARD_CACHE_SECONDS}
    return render(request, "metering/overview.html", context)


@_dashboard
def reconciliation(request):
    from datetime import date, timedelta

    from django.utils import timezone

    from .api import reconciliation_ledger_url
    from .models import Reconciliation
    from .provider_usage import CSV_COLUMNS
    from .reconciliation import reconciliation_overview

    today = timezone.now().date()
    try:
        last = date.fromisoformat(request.GET.get("to") or today.isoformat())
        first = date.fromisoformat(request.GET.get("from") or (last - timedelta(days=13)).isoformat())
    except ValueError:
        last, first = today, today - timedelta(days=13)
    first = max(first, last - timedelta(days=92))
    provider = request.GET.get("provider", "")[:100]
    status = request.GET.get("status", "")
    if status not in Reconciliation.Status.values:
        status = ""
    overview = reconciliation_overview(first, last, provider, status)
    for row in overview["rows"]:
        row.ledger_url = reconciliation_ledger_url(row)
    context = {
        "first": first,
        "last": last,
        "provider": provider,
        "status": status,
        "can_upload": request.user.has_perm("metering.add_providerusage"),
        "csv_columns": CSV_COLUMNS,
        "statuses": Reconciliation.Status.values,
        "tolerance": settings.SPENDPLANE_RECONCILE_TOLERANCE_PCT,
        **overview,
    }
    return render(request, _template(request, "metering/reconciliation.html", "reconciliation-table"), context)


@_dashboard
@require_POST
@permission_required("metering.add_providerusage", raise_exception=True)
def reconciliation_upload(request):
    """A console export for one provider: its days replace the provider's figures and are
    reconciled at once. A file with a bad row imports nothing and says which line."""
    from urllib.parse import urlencode

    from .provider_usage import ProviderUsageError
    from .reconciliation import usage_export_import

    provider = request.POST.get("provider", "").strip()[:100]
    upload = request.FILES.get("file")
    back = reverse("dashboard:reconciliation")
    if not provider or upload is None:
        messages.error(request, "Give the provider's name and a CSV file.")
        return redirect(back)
    if upload.size > UPLOAD_LIMIT_BYTES:
        messages.error(request, f"The file is over {UPLOAD_LIMIT_BYTES // 1_000_000} MB; import it with manage.py.")
        return redirect(back)
    try:
        stored, first, last, result = usage_export_import(provider, upload.read().decode("utf-8-sig").splitlines())
    except UnicodeDecodeError:
        messages.error(request, "The file is not UTF-8 text; nothing was imported.")
        return redirect(back)
    except ProviderUsageError as error:
        messages.error(request, f"{error}; nothing was imported.")
        return redirect(back)
    messages.success(request, f"{provider}: {stored} row(s) for {first} to {last} imported; {result.summary()}.")
    query = urlencode({"from": first.isoformat(), "to": last.isoformat(), "provider": provider})
    return redirect(f"{back}?{query}")
