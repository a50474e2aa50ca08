"""Drop cached key snapshots whenever a key, its tenant or its plan changes."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .auth import forget_api_keys
from .models import ApiKey, Budget, Plan, RateLimit, Tenant


@receiver([post_save, post_delete], sender=ApiKey)
def _key_changed(sender, instance: ApiKey, **kwargs) -> None:
    forget_api_keys([instance.key_hash])


@receiver([post_save, post_delete], sender=Tenant)
def _tenant_changed(sender, instance: Tenant, **kwargs) -> None:
    forget_api_keys(ApiKey.objects.filter(tenant_id=instance.pk).values_list("key_hash", flat=True))


@receiver([post_save, post_delete], sender=Budget)
@receiver([post_save, post_delete], sender=RateLimit)
def _caps_changed(sender, instance, **kwargs) -> None:
    forget_api_keys(ApiKey.objects.filter(tenant_id=instance.tenant_id).values_list("key_hash", flat=True))


@receiver(post_save, sender=Plan)
def _plan_changed(sender, instance: Plan, **kwargs) -> None:
    forget_api_keys(ApiKey.objects.filter(tenant__plan_id=instance.pk).values_list("key_hash", flat=True))
