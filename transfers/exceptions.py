"""Domain errors of money movement, rendered by wallet_project.exceptions.

The business-rule errors (insufficient balance, inactive wallet, currency
mismatch) are raised inside the settle step and stored on the FAILED log as
its error_code and error_message; a replay raises the same class again.
"""

from rest_framework import status

from wallet_project.exceptions import ServiceError


class BusinessRuleViolation(ServiceError):
    """The request was well formed but the money cannot move: a FAILED log."""

    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY


class InsufficientBalance(BusinessRuleViolation):
    default_code = "insufficient_balance"
    default_detail = "Insufficient balance."


class WalletInactive(BusinessRuleViolation):
    default_code = "wallet_inactive"
    default_detail = "The wallet is inactive."


class CurrencyMismatch(BusinessRuleViolation):
    default_code = "currency_mismatch"
    default_detail = "The wallets hold different currencies."


class BalanceLimitExceeded(BusinessRuleViolation):
    default_code = "balance_limit_exceeded"
    default_detail = "The movement would take a balance beyond what the ledger can hold (NUMERIC(20,2))."


BUSINESS_RULE_ERRORS = {
    cls.default_code: cls for cls in (InsufficientBalance, WalletInactive, CurrencyMismatch, BalanceLimitExceeded)
}


class IdempotencyKeyReused(ServiceError):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_code = "idempotency_key_reused"
    default_detail = "This idempotency key was already used for a different request."


class IdempotencyKeyInUse(ServiceError):
    status_code = status.HTTP_409_CONFLICT
    default_code = "idempotency_key_in_use"
    default_detail = "A request with this idempotency key is still being processed; retry shortly."


class TransactionNotFound(ServiceError):
    status_code = status.HTTP_404_NOT_FOUND
    default_code = "transaction_not_found"
    default_detail = "Transaction not found."


class ReversalNotAllowed(ServiceError):
    status_code = status.HTTP_409_CONFLICT
    default_code = "not_reversible"
    default_detail = "Only a COMPLETED transaction can be reversed, and only once."
