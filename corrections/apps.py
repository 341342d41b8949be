from django.apps import AppConfig


class CorrectionsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "corrections"

    def ready(self) -> None:
        # The waiting requests join /metrics from here: the ground floor imports no app.
        from corrections.metrics import corrections_state
        from wallet_project.metrics import register_state_source

        register_state_source(corrections_state)
