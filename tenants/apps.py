from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"

    def ready(self) -> None:
        from . import audit, schema, signals  # noqa: F401

        audit.connect()
