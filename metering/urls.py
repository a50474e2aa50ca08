from django.urls import path

from . import views

app_name = "dashboard"
urlpatterns = [
    path("", views.margins, name="margins"),
    path("margins.csv", views.margins_csv, name="margins-csv"),
    path("overview/", views.overview, name="overview"),
    path("reconciliation/", views.reconciliation, name="reconciliation"),
    path("reconciliation/upload/", views.reconciliation_upload, name="reconciliation-upload"),
    path("tenants/<int:pk>/", views.tenant, name="tenant"),
    path("tenants/<int:pk>/requests/", views.tenant_requests, name="tenant-requests"),
]
