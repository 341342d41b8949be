from django.apps import AppConfig


class TransfersConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "transfers"

    def ready(self) -> None:
        from django.core import checks

        from transfers.checks import check_a_full_batch_fits_the_transfers_rate
        from transfers.selectors import day_totals
        from transfers.telemetry import settlement_state
        from wallet_project.metrics import register_state_source
        from wallet_project.throttling import check_throttle_scopes
        from wallets.selectors import register_day_totals

        # The settlement figures join /metrics from here: the ground floor imports no app.
        register_state_source(settlement_state)
        # A wallet shows what it has left today from the totals this app keeps.
        register_day_totals(day_totals)
        # Every route's rate-limit scope has a rate, checked at start-up: the
        # money routes name theirs in ChargedOnLookup (transfers/views.py).
        checks.register(check_throttle_scopes)
        checks.register(check_a_full_batch_fits_the_transfers_rate)
