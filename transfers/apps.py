from django.apps import AppConfig


class TransfersConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "transfers"

    def ready(self) -> None:
        # The settlement figures join /metrics from here: the ground floor imports no app.
        from transfers.telemetry import settlement_state
        from wallet_project.metrics import register_state_source

        register_state_source(settlement_state)
