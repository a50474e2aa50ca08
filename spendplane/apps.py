from django.apps import AppConfig


class SpendplaneConfig(AppConfig):
    name = "spendplane"
    verbose_name = "Spendplane gateway"

    def ready(self) -> None:
        from metering import tokens

        tokens.install_offline_encodings()
