from django.apps import AppConfig


class ClientsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "clients"
    verbose_name = "API clients"

    def ready(self) -> None:
        from clients.authentication import connect_receivers

        connect_receivers()
