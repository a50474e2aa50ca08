from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from guard import api as guard_api
from metering import api as metering_api
from tenants import api as tenants_api

from . import health, metrics, proxy

router = DefaultRouter()
router.register("plans", tenants_api.PlanViewSet)
router.register("tenants", tenants_api.TenantViewSet)
router.register("budgets", tenants_api.BudgetViewSet)
router.register("rate-limits", tenants_api.RateLimitViewSet)
router.register("cap-changes", tenants_api.CapChangeViewSet)
router.register("providers", metering_api.ProviderViewSet)
router.register("routes", metering_api.ModelRouteViewSet)
router.register("prices", metering_api.PriceOverrideViewSet)
router.register("usage/events", metering_api.UsageEventViewSet, basename="usage-event")
router.register("alerts", metering_api.AlertEventViewSet)
router.register("webhooks", metering_api.WebhookEndpointViewSet)
router.register("credits", tenants_api.CreditViewSet)
router.register("revenue", tenants_api.RevenueEntryViewSet)
router.register("audit", tenants_api.AuditEntryViewSet)
router.register("reconciliations", metering_api.ReconciliationViewSet)
router.register("guard/events", guard_api.GuardEventViewSet)

urlpatterns = [
    path("v1/chat/completions", proxy.ChatCompletionsView.as_view()),
    path("v1/embeddings", proxy.EmbeddingsView.as_view()),
    path("v1/messages", proxy.MessagesView.as_view()),
    path("v1/messages/count_tokens", proxy.CountTokensView.as_view()),
    path("v1/responses", proxy.ResponsesView.as_view()),
    path("v1/responses/<str:response_id>", proxy.ResponseView.as_view()),
    path("v1/responses/<str:response_id>/input_items", proxy.ResponseInputItemsView.as_view()),
    path("v1/responses/<str:response_id>/cancel", proxy.ResponseCancelView.as_view()),
    path("v1/completions", proxy.CompletionsView.as_view()),
    path("v1/models", proxy.ModelsView.as_view()),
    path("v1/models/<path:model>", proxy.ModelView.as_view()),
    re_path(r"^v1(?:/(?P<rest>.*))?$", proxy.unknown_v1_path),
    path("api/v1/margins/", metering_api.MarginsView.as_view(), name="margins"),
    path("api/v1/", include(router.urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    path("admin/", admin.site.urls),
    path("healthz", health.healthz),
    path("metrics", metrics.metrics_view),
    path("dashboard/", include("metering.urls")),
]
