"""Filters the management API's lists share."""

from __future__ import annotations

from datetime import UTC

import django_filters
from rest_framework.exceptions import ValidationError


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 instant, compared in UTC: PostgreSQL refuses offsets past ±15:59, which ISO
    (and Python) allow; found by schemathesis."""

    def filter(self, qs, value):
        if value is not None:
            try:
                value = value.astimezone(UTC)
            except OverflowError:
                raise ValidationError({self.field_name: "Out of range."}) from None
        return super().filter(qs, value)
