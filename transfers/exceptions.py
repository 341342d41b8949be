"""Domain errors of money movement, rendered by wallet_project.exceptions.

The business-rule errors (BUSINESS_RULE_ERRORS: insufficient balance,
inactive wallet, currency mismatch, the ledger's range, a limit, a
restriction, an atomic batch's failure) are raised by the engine's rule
check (transfers/engine.py, check_rules) and stored on the FAILED log as its
error_code and error_message; the view raises the same class again from the
log (transfers/views.py, money_response), for the first answer and every
replay alike. A correction, which records no FAILED log, raises it instead.
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


class LimitExceeded(BusinessRuleViolation):
    """A movement past a limit the service sets (the message names it and
    the room left): the client's exposure in a currency
    (settings.CLIENT_EXPOSURE_LIMIT), a tier cap, a client's per-movement or
    daily cap (docs/limits.md). `limit`: its name, for the refusals metric."""

    default_code = "limit_exceeded"
    default_detail = "The movement would pass a limit."

    def __init__(self, detail=None, *, limit: str = "", **kwargs):
        super().__init__(detail, **kwargs)
        self.limit = limit


class WalletRestricted(BusinessRuleViolation):
    """A movement out of a post-no-debit wallet, or into a post-no-credit
    one (docs/limits.md, "Restrictions"): distinct from a frozen wallet."""

    default_code = "wallet_restricted"
    default_detail = "The wallet is restricted."


class BatchFailed(BusinessRuleViolation):
    """An atomic batch broke a rule at one payout, so none moved: the batch's
    answer, and the error of every other payout of it."""

    default_code = "batch_failed"
    default_detail = "A payout of the atomic batch failed, so no payout of it moved."


BUSINESS_RULE_ERRORS = {
    cls.default_code: cls
    for cls in (
        InsufficientBalance,
        WalletInactive,
        CurrencyMismatch,
        BalanceLimitExceeded,
        LimitExceeded,
        WalletRestricted,
        BatchFailed,
    )
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


class BatchNotFound(ServiceError):
    status_code = status.HTTP_404_NOT_FOUND
    default_code = "batch_not_found"
    default_detail = "Batch not found."


class ReversalNotAllowed(ServiceError):
    status_code = status.HTTP_409_CONFLICT
    default_code = "not_reversible"
    default_detail = "Only a COMPLETED transaction can be reversed, and only once."


# --- holds (docs/api.md, "Holds") ------------------------------------------------


class HoldNotFound(ServiceError):
    """Unknown, or another client's: the same answer for both (tenancy)."""

    status_code = status.HTTP_404_NOT_FOUND
    default_code = "hold_not_found"
    default_detail = "Hold not found."


class HoldNotOpen(ServiceError):
    """The hold has ended (captured, voided, expired) or never reserved
    anything (FAILED): data is the hold, saying which and how."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "hold_not_open"
    default_detail = "The hold is not open: it has ended, or it was refused when placed."


class CaptureExceedsHold(ServiceError):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_code = "capture_exceeds_hold"
    default_detail = "A capture moves at most the hold's amount."


class HoldExpiryNotLater(ServiceError):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_code = "hold_expiry_not_later"
    default_detail = "An extension moves the hold's expiry later, never earlier."
