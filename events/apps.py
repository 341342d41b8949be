from django.apps import AppConfig


class EventsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "events"
    verbose_name = "Events and webhooks"

    def ready(self) -> None:
        from events.metrics import webhook_state
        from wallet_project.metrics import register_state_source

        # Webhook figures join /metrics from here: the ground floor imports no app.
        register_state_source(webhook_state)
