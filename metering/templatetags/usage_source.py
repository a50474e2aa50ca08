from django import template

from metering.analytics import analytics_reads

register = template.Library()


@register.simple_tag
def usage_source() -> str:
    """Where the dashboards' usage sums come from, when it is not the database itself."""
    return "ClickHouse" if analytics_reads() else ""
