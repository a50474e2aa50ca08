from django.db import models


class GuardMode(models.TextChoices):
    OFF = "off"
    LOG = "log", "Log only"
    SANITIZE = "sanitize", "Sanitise"
    BLOCK = "block"


class GuardEvent(models.Model):
    """A detection: what was scanned, how it scored, which rules matched, what the guard did."""

    class Action(models.TextChoices):
        BLOCKED = "blocked"
        SANITIZED = "sanitized"
        LOGGED = "logged"

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="guard_events")
    request_id = models.CharField(max_length=64, db_index=True)
    endpoint = models.CharField(max_length=40)
    role = models.CharField(max_length=20)
    message_index = models.IntegerField()
    score = models.FloatField()
    threshold = models.FloatField()
    rules = models.JSONField(default=list)
    action = models.CharField(max_length=10, choices=Action.choices)
    excerpt = models.CharField(max_length=300, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.tenant} {self.action} {self.score:.2f}"
