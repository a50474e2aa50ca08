"""How the management API's authentication appears in the OpenAPI schema."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class MasterKeyScheme(OpenApiAuthenticationExtension):
    target_class = "tenants.auth.MasterKeyAuthentication"
    name = "masterKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "The operator's SPENDPLANE_MASTER_KEY. Tenant keys (sp_…) are refused here.",
        }
