from django.apps import AppConfig


class ReconciliationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "reconciliation"

    def ready(self) -> None:
        # Reconciliation's figures join /metrics from here, so that the ground
        # floor (wallet_project/metrics.py) imports no app.
        from reconciliation.metrics import reconciliation_state
        from wallet_project.metrics import register_state_source

        register_state_source(reconciliation_state)

        # A statement names its last movement's link in the ledger chain
        # (docs/api.md, "a statement"); transfers knows nothing of the chain.
        from reconciliation.chain import statement_link
        from transfers.statements import register_chain_lookup

        register_chain_lookup(statement_link)
