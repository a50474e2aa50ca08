from django.apps import AppConfig


class SpendplaneConfig(AppConfig):
    name = "spendplane"
    verbose_name = "Spendplane gateway"

    def ready(self) -> None:
        from metering import tokens

        from .log_format import install_request_ids

        install_request_ids()
        tokens.install_offline_encodings()
