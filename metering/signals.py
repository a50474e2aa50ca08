from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .models import ModelRoute, PriceOverride, Provider
from .pricing import forget_overrides
from .routing import forget_routes


@receiver([post_save, post_delete], sender=PriceOverride)
def _prices_changed(sender, **kwargs) -> None:
    forget_overrides()


@receiver([post_save, post_delete], sender=ModelRoute)
@receiver([post_save, post_delete], sender=Provider)
def _routes_changed(sender, **kwargs) -> None:
    forget_routes()
