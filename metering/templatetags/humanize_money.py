from decimal import ROUND_HALF_UP, Decimal

from django import template

register = template.Library()


@register.filter
def usd(value) -> str:
    """Dollars for people: cents from $1 up, four significant places below (AI costs are small)."""
    if value is None or value == "":
        return "–"
    amount = Decimal(value)
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    if amount >= 1 or amount == 0:
        return f"{sign}${amount.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):,}"
    return f"{sign}${amount.quantize(Decimal('0.000001'), rounding=ROUND_HALF_UP).normalize():f}"
