"""The ledger reconciled against the provider's own usage report: traffic through the gateway,
the bundled upstream answering its usage APIs from what it served, plus traffic it never saw."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import requests
from django.core.management import CommandError, call_command
from django.utils import timezone

from metering.models import AlertEvent, ModelRoute, Provider, ProviderUsage, Reconciliation, UsageEvent, UsageImport
from metering.pricing import Rates, Usage
from metering.reconciliation import model_key, reconcile_usage
from metering.services import LedgerEntry, usage_record
from tests.conftest import MASTER_KEY, wait_for_rows

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def reports(settings, mock_upstream):
    """The bundled upstream's usage reports, emptied, and the admin keys that read them."""
    settings.OPENAI_ADMIN_KEY = "mock-admin-key"
    settings.ANTHROPIC_ADMIN_KEY = "mock-admin-key"
    mock_upstream.state.served.configure({"reset": True})
    yield mock_upstream.state.served
    mock_upstream.state.served.configure({"reset": True})


def traffic(url: str, key: str) -> int:
    """Chat (some streamed, one cut), embeddings and Anthropic messages through the gateway."""
    headers = {"Authorization": f"Bearer {key}"}
    sent = 0
    for i in range(6):
        body = {"model": "gpt-4o-mini", "stream": i % 2 == 0, "messages": [{"role": "user", "content": f"hello {i}"}]}
        requests.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=20).content  # noqa: B018
        sent += 1
    embed = {"model": "text-embedding-3-small", "input": ["one two three", "four"]}
    assert requests.post(f"{url}/v1/embeddings", json=embed, headers=headers, timeout=20).status_code == 200
    for i in range(3):
        message = {
            "model": "claude-3-5-haiku-latest",
            "max_tokens": 30,
            "messages": [{"role": "user", "content": f"q{i}"}],
        }
        response = requests.post(f"{url}/v1/messages", json=message, headers={"x-api-key": key}, timeout=20)
        assert response.status_code == 200, response.text
    return sent + 4


def rows_by_model(day: date) -> dict[str, Reconciliation]:
    return {r.model: r for r in Reconciliation.objects.filter(day=day)}


def snapshot(day: date) -> list[tuple]:
    return sorted(Reconciliation.objects.filter(day=day).values_list("id", "model", "status", "computed_at"))


def test_the_gateways_traffic_matches_and_traffic_it_never_saw_is_missing_in_the_ledger(
    live_server, alice, reports, capsys
):
    sent = traffic(live_server.url, alice.raw_key)
    wait_for_rows(sent)
    today = timezone.now().date()
    reports.add_unseen("openai", "gpt-4.1-nano", today, requests=7, input_tokens=7000, output_tokens=900)

    call_command("reconcile_usage", "--day", today.isoformat())
    assert "Reconciled" in capsys.readouterr().out
    rows = rows_by_model(today)
    assert rows["gpt-4o-mini-2024-07-18"].status == "match", rows["gpt-4o-mini-2024-07-18"].detail
    assert rows["gpt-4o-mini-2024-07-18"].ledger_requests == rows["gpt-4o-mini-2024-07-18"].provider_requests == 6
    assert rows["gpt-4o-mini-2024-07-18"].capture_rate == Decimal("1.000000")
    assert rows["text-embedding-3-small"].status == "match"
    claude = rows["claude-3-5-haiku-20241022"]
    assert (claude.status, claude.provider, claude.provider_requests) == ("match", "anthropic-default", None)
    assert claude.ledger_input_tokens == claude.provider_input_tokens > 0
    assert claude.ledger_models == ["claude-3-5-haiku-latest"]
    unseen = rows["gpt-4.1-nano"]
    assert (unseen.status, unseen.ledger_requests, unseen.provider_requests) == ("missing_in_ledger", 0, 7)
    assert unseen.capture_rate == 0

    # through the API, side by side
    api = requests.get(
        f"{live_server.url}/api/v1/reconciliations/",
        params={"day": today.isoformat(), "status": "missing_in_ledger"},
        headers={"Authorization": f"Bearer {MASTER_KEY}"},
        timeout=20,
    ).json()
    assert [(r["model"], r["provider_input_tokens"], r["ledger_input_tokens"]) for r in api["results"]] == [
        ("gpt-4.1-nano", 7000, 0)
    ]
    matched = requests.get(
        f"{live_server.url}/api/v1/reconciliations/",
        params={"day": today.isoformat(), "provider": "openai-default", "status": "match"},
        headers={"Authorization": f"Bearer {MASTER_KEY}"},
        timeout=20,
    ).json()["results"]
    chat = next(r for r in matched if r["model"].startswith("gpt-4o-mini"))
    assert chat["ledger_requests"] == chat["provider_requests"] == 6
    assert Decimal(chat["ledger_cost_usd"]) == sum(
        e.cost_usd for e in UsageEvent.objects.filter(model="gpt-4o-mini", usage_source="provider")
    )
    ledger = requests.get(
        f"{live_server.url}{chat['ledger_events_url']}", headers={"Authorization": f"Bearer {MASTER_KEY}"}
    )
    assert {e["model"] for e in ledger.json()["results"]} == {"gpt-4o-mini"}

    # one alert for the provider's day, none for the provider that matched
    alerts = AlertEvent.objects.filter(kind="reconciliation")
    assert [(a.state, a.data["provider"]) for a in alerts] == [("fired", "openai-default")]
    assert "gpt-4.1-nano missing in ledger" in alerts[0].message

    # a rerun changes nothing: the same rows, untouched, and no second alert
    before = snapshot(today)
    call_command("reconcile_usage", "--day", today.isoformat())
    assert snapshot(today) == before
    assert AlertEvent.objects.filter(kind="reconciliation").count() == 1


def test_a_provider_counting_tokens_differently_is_drift(live_server, alice, reports):
    wait_for_rows(traffic(live_server.url, alice.raw_key))
    reports.configure({"skew": {"gpt-4o-mini-2024-07-18": 1.05}})
    today = timezone.now().date()
    reconcile_usage(today)
    row = rows_by_model(today)["gpt-4o-mini-2024-07-18"]
    assert row.status == "drift"
    assert "input tokens" in row.detail and row.capture_rate < 1
    assert rows_by_model(today)["claude-3-5-haiku-20241022"].status == "match"


def test_usage_the_provider_never_reported_is_missing_at_provider(live_server, alice, reports):
    wait_for_rows(traffic(live_server.url, alice.raw_key))
    reports.configure({"reset": True})  # the provider's report lost the day
    today = timezone.now().date()
    reconcile_usage(today)
    statuses = {row.status for row in rows_by_model(today).values()}
    assert statuses == {"missing_at_provider"}


def test_a_cut_stream_counted_by_estimate_still_matches(live_server, alice, reports):
    headers = {"Authorization": f"Bearer {alice.raw_key}"}
    for i in range(30):
        text = "MOCK_FAULT=cut" if i == 0 else f"question {i}"
        body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": text}]}
        requests.post(f"{live_server.url}/v1/chat/completions", json=body, headers=headers, timeout=20).content  # noqa: B018
    wait_for_rows(30)
    assert UsageEvent.objects.filter(usage_source="estimated").count() == 1
    today = timezone.now().date()
    reconcile_usage(today, provider="openai-default")
    row = rows_by_model(today)["gpt-4o-mini-2024-07-18"]
    assert (row.ledger_requests, row.estimated_requests, row.provider_requests) == (29, 1, 30)
    assert row.status == "match", row.detail


@pytest.mark.parametrize("fault", ["401", "500", "malformed", "missing_page"])
def test_a_bad_provider_answer_keeps_the_previous_rows_and_the_next_run_retries(live_server, alice, reports, fault):
    wait_for_rows(traffic(live_server.url, alice.raw_key))
    today = timezone.now().date()
    yesterday = today - timedelta(days=1)
    call_command("reconcile_usage", "--day", today.isoformat(), "--days", "2", "--provider", "openai-default")
    before = snapshot(today)
    reports.add_unseen("openai", "gpt-4.1-nano", today, requests=1, input_tokens=10, output_tokens=10)
    reports.configure({"fault": fault})
    with pytest.raises(CommandError, match="previous rows kept") as raised:
        call_command("reconcile_usage", "--day", today.isoformat(), "--days", "2", "--provider", "openai-default")
    expected = {"401": "HTTP 401", "500": "HTTP 500", "malformed": "not JSON", "missing_page": "HTTP 400"}[fault]
    assert expected in str(raised.value)
    assert snapshot(today) == before
    assert UsageImport.objects.filter(ok=False, provider="openai-default").count() == 1
    assert ProviderUsage.objects.filter(model="gpt-4.1-nano").count() == 0

    call_command("reconcile_usage", "--day", today.isoformat(), "--days", "2", "--provider", "openai-default")
    assert rows_by_model(today)["gpt-4.1-nano"].status == "missing_in_ledger"
    assert not Reconciliation.objects.filter(day=yesterday).exists()


def _ledger_row(
    request_id: str, model: str, provider: str, when: datetime, prompt: int, completion: int, upstream_model: str = ""
) -> None:
    usage_record(
        entry=LedgerEntry(
            request_id=request_id,
            endpoint="chat.completions",
            created_at=when,
            status_code=200,
            latency_ms=10,
            tenant_id=None,
            model=model,
            provider=provider,
            upstream_model=upstream_model,
            usage=Usage(prompt_tokens=prompt, completion_tokens=completion),
            usage_source="provider",
            rates=Rates(Decimal("1"), Decimal("2"), Decimal("0.5"), Decimal("1"), "test"),
        )
    )


def test_a_console_export_reconciles_a_provider_without_a_usage_api(tmp_path, db, capsys):
    day = date(2026, 11, 20)
    noon = datetime(2026, 11, 20, 12, tzinfo=UTC)
    for i in range(4):
        _ledger_row(f"vllm-{i}", "llama-3.1-8b", "vllm-east", noon + timedelta(minutes=i), 1000, 100)
    export = tmp_path / "usage.csv"
    export.write_text(
        "day,model,requests,input_tokens,output_tokens,cost_usd\n"
        "2026-11-20,llama-3.1-8b,4,4000,400,0.0048\n"
        "2026-11-20,llama-3.1-70b,2,900,90,\n"
    )
    call_command("import_provider_usage", str(export), "--provider", "vllm-east")
    rows = rows_by_model(day)
    assert rows["llama-3.1-8b"].status == "match"
    assert rows["llama-3.1-70b"].status == "missing_in_ledger"
    with pytest.raises(CommandError, match="line 2"):
        bad = tmp_path / "bad.csv"
        bad.write_text("day,model,input_tokens,output_tokens\n2026-11-40,x,1,1\n")
        call_command("import_provider_usage", str(bad), "--provider", "vllm-east")
    assert ProviderUsage.objects.filter(provider="vllm-east").count() == 2


def test_a_routed_alias_is_reconciled_under_the_model_the_provider_bills(db, settings, mock_upstream):
    settings.OPENAI_ADMIN_KEY = ""
    provider = Provider.objects.create(
        name="azure-eu", kind="openai_compatible", base_url=mock_upstream.url + "/v1", admin_api_key="mock-admin-key"
    )
    ModelRoute.objects.create(model="house-model", provider=provider, upstream_model="gpt-4o-mini")
    mock_upstream.state.served.configure({"reset": True})
    day = timezone.now().date()
    _ledger_row("alias-1", "house-model", "azure-eu", timezone.now(), 500, 50)
    mock_upstream.state.served.add_unseen("openai", "gpt-4o-mini-2024-07-18", day, requests=1, input_tokens=500,
                                          output_tokens=50)  # fmt: skip
    result = reconcile_usage(day, provider="azure-eu")
    assert result.errors == {}
    rows = rows_by_model(day)
    assert list(rows) == ["gpt-4o-mini-2024-07-18"]
    assert rows["gpt-4o-mini-2024-07-18"].ledger_models == ["house-model"]
    assert rows["gpt-4o-mini-2024-07-18"].status == "match"
    mock_upstream.state.served.configure({"reset": True})


def test_a_route_changed_since_keeps_the_day_under_the_model_it_was_sent(db, settings, mock_upstream):
    settings.OPENAI_ADMIN_KEY = ""
    provider = Provider.objects.create(
        name="azure-eu", kind="openai_compatible", base_url=mock_upstream.url + "/v1", admin_api_key="mock-admin-key"
    )
    route = ModelRoute.objects.create(model="house-model", provider=provider, upstream_model="gpt-4o-mini")
    mock_upstream.state.served.configure({"reset": True})
    day = timezone.now().date()
    _ledger_row("sent-1", "house-model", "azure-eu", timezone.now(), 500, 50, upstream_model="gpt-4o-mini")
    route.upstream_model = "gpt-4o"  # moved later the same day
    route.save()
    mock_upstream.state.served.add_unseen("openai", "gpt-4o-mini-2024-07-18", day, requests=1, input_tokens=500,
                                          output_tokens=50)  # fmt: skip
    reconcile_usage(day, provider="azure-eu")
    rows = rows_by_model(day)
    assert list(rows) == ["gpt-4o-mini-2024-07-18"] and rows["gpt-4o-mini-2024-07-18"].status == "match"
    mock_upstream.state.served.configure({"reset": True})


def test_the_provider_api_never_returns_the_admin_key(db, api):
    created = api.post(
        "/api/v1/providers/",
        {
            "name": "openai-org",
            "kind": "openai",
            "base_url": "https://api.openai.com/v1",
            "admin_api_key": "sk-admin-1",
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    assert "sk-admin-1" not in created.content.decode()
    assert created.json()["has_admin_api_key"] is True
    assert Provider.objects.get(name="openai-org").admin_api_key == "sk-admin-1"


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("o3-mini", "o3-mini"),
        ("gpt-4.1", "gpt-4.1"),
    ],
)
def test_model_names_compare_without_their_snapshot(name, key):
    assert model_key(name) == key


def test_a_day_past_the_tolerance_is_alerted_by_webhook_and_email_once_and_recovers(db, settings, receiver):
    from django.core import mail

    from metering.models import WebhookEndpoint
    from metering.provider_usage import Report, report_store
    from tests.metering.conftest import Receiver

    settings.SPENDPLANE_ALERT_EMAILS = ["finance@example.com"]
    WebhookEndpoint.objects.create(url=receiver, secret="whsec-recon")
    day = date(2026, 11, 21)
    for i in range(10):
        _ledger_row(f"d-{i}", "gpt-4o", "openai-default", datetime(2026, 11, 21, 9, i, tzinfo=UTC), 1000, 100)
    report = Report("csv")
    billed = report.at(day, "gpt-4o-2024-08-06")
    billed.requests, billed.input_tokens, billed.output_tokens = 10, 10_200, 1000  # 2% more input: drift
    report_store("openai-default", day, day, report)
    reconcile_usage(day, fetch=False)
    reconcile_usage(day, fetch=False)

    assert len(Receiver.received) == 1 and len(mail.outbox) == 1
    payload = json.loads(Receiver.received[0][1])
    assert (payload["kind"], payload["state"], payload["tenant"]) == ("reconciliation", "fired", None)
    assert payload["data"]["rows"] == [{"model": "gpt-4o-2024-08-06", "status": "drift"}]
    assert "openai-default bill for 2026-11-21" in mail.outbox[0].subject

    billed.input_tokens = 10_000
    report_store("openai-default", day, day, report)
    reconcile_usage(day, fetch=False)
    assert rows_by_model(day)["gpt-4o-2024-08-06"].status == "match"
    assert [json.loads(body)["state"] for _, body in Receiver.received] == ["fired", "recovered"]


def test_finance_uploads_a_console_export_on_the_page(client, db):
    from django.contrib.auth.models import User
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tenants.roles import roles_setup

    finance = User.objects.create_user("fin", is_staff=True)
    finance.groups.add(roles_setup()["finance"])
    client.force_login(finance)
    for i in range(2):
        _ledger_row(f"up-{i}", "mistral-small", "mistral-eu", datetime(2026, 11, 22, 10, i, tzinfo=UTC), 100, 10)
    page = client.get("/dashboard/reconciliation/")
    assert b'id="upload"' in page.content

    good = SimpleUploadedFile(
        "usage.csv", b"day,model,requests,input_tokens,output_tokens\n2026-11-22,mistral-small,2,200,20\n"
    )
    response = client.post("/dashboard/reconciliation/upload/", {"provider": "mistral-eu", "file": good}, follow=True)
    assert b"1 match" in response.content
    assert rows_by_model(date(2026, 11, 22))["mistral-small"].status == "match"

    bad = SimpleUploadedFile("usage.csv", b"day,model,input_tokens,output_tokens\n2026-11-22,mistral-small,lots,1\n")
    response = client.post("/dashboard/reconciliation/upload/", {"provider": "mistral-eu", "file": bad}, follow=True)
    assert b"line 2" in response.content and b"nothing was imported" in response.content
    assert ProviderUsage.objects.get(provider="mistral-eu").input_tokens == 200

    support = User.objects.create_user("sup", is_staff=True)
    support.groups.add(roles_setup()["support"])
    client.force_login(support)
    assert client.post("/dashboard/reconciliation/upload/", {"provider": "x"}).status_code == 403
    assert client.get("/dashboard/reconciliation/upload/").status_code in (403, 405)


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_a_cost_report_the_key_lacks_leaves_costs_empty_but_its_failure_fails_the_import(reports, kind):
    from metering.provider_usage import ProviderUsageError, UsageSource, anthropic_report, openai_report

    today = timezone.now().date()
    reports.add_unseen(kind, "gpt-4.1-nano" if kind == "openai" else "claude-x", today, requests=1, input_tokens=9,
                       output_tokens=1, cost_usd=Decimal("0.5"))  # fmt: skip
    from django.conf import settings

    if kind == "openai":
        source, read, before_costs = (
            UsageSource("o", kind, settings.OPENAI_BASE_URL, "mock-admin-key"),
            openai_report,
            2,
        )
    else:
        source, read, before_costs = (
            UsageSource("a", kind, settings.ANTHROPIC_BASE_URL, "mock-admin-key"),
            anthropic_report,
            1,
        )
    reports.faults[:] = [""] * before_costs + ["404"]
    figures = next(iter(read(source, today, today).figures.values()))
    assert (figures.input_tokens, figures.cost_usd) == (9, None)
    reports.faults[:] = [""] * before_costs + ["500"]
    with pytest.raises(ProviderUsageError) as raised:
        read(source, today, today)
    assert raised.value.status == 500
    reports.faults[:] = []
    # answered: the unseen $0.50 plus the tokens at the model's list price
    assert next(iter(read(source, today, today).figures.values())).cost_usd >= Decimal("0.5")
