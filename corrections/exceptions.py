"""Why a correction could not be requested or decided. Each carries one
sentence for the person who tried (the admin shows it); nothing was written
when one is raised, except as each class says."""


class CorrectionRefused(Exception):
    """The request or the decision is refused; str() says why."""


class NotPermitted(CorrectionRefused):
    """The user lacks the permission the step needs."""


class OwnRequest(CorrectionRefused):
    """The approver is the requester: four eyes means two people."""


class NotPending(CorrectionRefused):
    """Already applied, rejected, expired or failed: decided once only."""


class RequestExpired(CorrectionRefused):
    """Its time ran out. Raised after the request was marked EXPIRED (with
    its audit row), which is committed."""


class FingerprintMismatch(CorrectionRefused):
    """The approver saw other content than the request holds."""


class NotCorrectable(CorrectionRefused):
    """What the request would change cannot be corrected this way (a
    transaction that is not COMPLETED, a wallet that is not frozen for fraud,
    one already waiting for approval)."""
