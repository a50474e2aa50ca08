"""The staff groups: finance reads margins, reconciliations and the audit log and manages credits and
revenue; support changes caps and keys."""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission

ROLES = {
    "finance": [
        "metering.view_margins",
        "metering.view_marginreport",
        "metering.view_usageevent",
        "metering.view_usagerollup",
        "metering.view_alertevent",
        "tenants.view_tenant",
        "tenants.view_plan",
        "tenants.view_budget",
        "tenants.view_capchange",
        "tenants.view_credit",
        "tenants.add_credit",
        "tenants.change_credit",
        "tenants.view_revenueentry",
        "tenants.add_revenueentry",
        "tenants.change_revenueentry",
        "tenants.view_auditentry",
        "metering.view_reconciliation",
        "metering.view_providerusage",
        "metering.add_providerusage",
        "metering.view_usageimport",
    ],
    "support": [
        "metering.view_margins",
        "metering.view_usageevent",
        "metering.view_alertevent",
        "guard.view_guardevent",
        "tenants.view_plan",
        "tenants.view_tenant",
        "tenants.change_tenant",
        "tenants.view_apikey",
        "tenants.add_apikey",
        "tenants.change_apikey",
        "tenants.view_budget",
        "tenants.add_budget",
        "tenants.change_budget",
        "tenants.delete_budget",
        "tenants.view_ratelimit",
        "tenants.add_ratelimit",
        "tenants.change_ratelimit",
        "tenants.delete_ratelimit",
        "tenants.view_capchange",
        "tenants.view_auditentry",
    ],
}


def roles_setup() -> dict[str, Group]:
    """Create or refresh the groups with exactly their permissions; idempotent."""
    groups = {}
    for name, codes in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        permissions = []
        for code in codes:
            app_label, codename = code.split(".")
            permissions.append(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        group.permissions.set(permissions)
        groups[name] = group
    return groups
