from rest_framework import mixins, serializers, viewsets

from .models import GuardEvent


class GuardEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = GuardEvent
        fields = [
            "id",
            "tenant",
            "request_id",
            "endpoint",
            "role",
            "message_index",
            "score",
            "threshold",
            "rules",
            "action",
            "excerpt",
            "created_at",
        ]


class GuardEventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Prompt-injection detections, newest first."""

    queryset = GuardEvent.objects.all()
    serializer_class = GuardEventSerializer
    filterset_fields = ["tenant", "action", "role", "request_id"]
