from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.db import connection

from metering import encryption
from metering.models import ModelRoute, Provider
from metering.routing import upstream_for

pytestmark = pytest.mark.django_db


def _stored_api_key(provider_id: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key FROM metering_provider WHERE id = %s", [provider_id])
        return cursor.fetchone()[0]


def test_provider_keys_are_encrypted_at_rest():
    provider = Provider.objects.create(name="oa", kind="openai", base_url="https://x.test/v1", api_key="sk-live-123")
    stored = _stored_api_key(provider.pk)
    assert "sk-live-123" not in stored
    assert Provider.objects.get(pk=provider.pk).api_key == "sk-live-123"


def test_keys_rotate_to_a_new_encryption_key(settings):
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.SPENDPLANE_ENCRYPTION_KEYS = [old_key]
    encryption._fernet.cache_clear()
    provider = Provider.objects.create(
        name="oa", kind="openai", base_url="https://x.test/v1", api_key="sk-live-123", admin_api_key="sk-admin-9"
    )
    settings.SPENDPLANE_ENCRYPTION_KEYS = [new_key, old_key]
    encryption._fernet.cache_clear()
    from django.core.management import call_command

    call_command("rotate_secrets")
    settings.SPENDPLANE_ENCRYPTION_KEYS = [new_key]
    encryption._fernet.cache_clear()
    try:
        rotated = Provider.objects.get(pk=provider.pk)
        assert (rotated.api_key, rotated.admin_api_key) == ("sk-live-123", "sk-admin-9")
    finally:
        settings.SPENDPLANE_ENCRYPTION_KEYS = []
        encryption._fernet.cache_clear()


def test_routes_send_a_model_to_its_provider_and_unknown_models_nowhere():
    provider = Provider.objects.create(name="anth", kind="anthropic", base_url="https://a.test", api_key="k")
    ModelRoute.objects.create(model="claude-*", provider=provider)
    ModelRoute.objects.create(model="fast", provider=provider, upstream_model="claude-3-5-haiku-latest")
    assert upstream_for("claude-sonnet-4-0").name == "anth"
    assert upstream_for("fast").upstream_model == "claude-3-5-haiku-latest"
    assert upstream_for("gpt-4o") is None


def test_with_no_routes_the_environment_defaults_serve(settings):
    assert upstream_for("claude-3-5-haiku-latest").base_url == settings.ANTHROPIC_BASE_URL
    assert upstream_for("gpt-4o").base_url == settings.OPENAI_BASE_URL
