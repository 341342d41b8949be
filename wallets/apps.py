from django.apps import AppConfig


class WalletsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "wallets"

    def ready(self) -> None:
        from wallet_project.metrics import register_state_source
        from wallets.authentication import connect_receivers
        from wallets.metrics import webhook_state

        connect_receivers()
        # Webhook figures join /metrics from here: the ground floor imports no app.
        register_state_source(webhook_state)
