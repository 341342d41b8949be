"""The nouns of a money request, shared by the API and the services.

Vocabulary (docs/design.md, "Words"):
- a **movement** is money asked to move from one wallet to another: its type
  (TRANSFER, DEPOSIT, WITHDRAWAL), amount, wallets and metadata (`Movement`);
- a **movement request** is a client's request for one, under an idempotency
  key (`found` is what the key already names: `Found`);
- a **transaction** is what the service records for it: one row of
  transaction_logs (`TransactionLog`, the first version's name; `log` in code), PENDING,
  then COMPLETED or FAILED;
- the **answer** is that transaction and whether an earlier request had
  already finished it (`MovementResult`).
"""

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser

from transfers.models import Hold, TransactionLog, TransactionStatus, TransactionType, TransferBatch


@dataclass(frozen=True)
class Movement:
    """What a money-moving request asks for. A wallet id of None stands for
    the settlement wallet of the other side's currency (deposit, withdrawal)."""

    type: TransactionType
    amount: Decimal
    metadata: dict
    source_wallet_id: uuid.UUID | None
    destination_wallet_id: uuid.UUID | None

    @classmethod
    def transfer(
        cls, *, source_wallet_id: uuid.UUID, destination_wallet_id: uuid.UUID, amount: Decimal, metadata: dict
    ) -> "Movement":
        """From one customer wallet to another."""
        return cls(TransactionType.TRANSFER, amount, metadata, source_wallet_id, destination_wallet_id)

    @classmethod
    def deposit(cls, *, wallet_id: uuid.UUID, amount: Decimal, metadata: dict) -> "Movement":
        """Money in: from the currency's settlement wallet to a customer wallet."""
        return cls(TransactionType.DEPOSIT, amount, metadata, None, wallet_id)

    @classmethod
    def withdrawal(cls, *, wallet_id: uuid.UUID, amount: Decimal, metadata: dict) -> "Movement":
        """Money out: from a customer wallet to the currency's settlement wallet."""
        return cls(TransactionType.WITHDRAWAL, amount, metadata, wallet_id, None)

    def fingerprint(self) -> str:
        """The movement fingerprint stored with its transaction: a replay must
        ask for the same movement (transfers.services, protocol layer 1)."""
        return canonical_fingerprint(
            type=self.type,
            source=self.source_wallet_id and str(self.source_wallet_id),
            destination=self.destination_wallet_id and str(self.destination_wallet_id),
            amount=self.amount,
            metadata=self.metadata,
        )


def canonical_fingerprint(**asked: object) -> str:
    """sha256 (64 hex digits) of a canonical form of what was asked, to tell a
    genuine retry from a reused key however the request was written: amounts
    are normalised ("100" == "100.00"), keys sorted, whitespace dropped."""
    canonical = {k: (f"{v:.2f}" if isinstance(v, Decimal) else v) for k, v in asked.items()}
    payload = json.dumps(canonical, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class Found:
    """Layer 1 of the protocol (docs/design.md, "The protocol: five
    layers"; step 2 of "The steps"): what a client's idempotency
    key already names, a transaction (services.movement_find), a batch
    (services.batch_find) or a placed hold (holds.hold_find, never
    PENDING), or None: nothing yet."""

    row: TransactionLog | TransferBatch | Hold | None

    @property
    def finished(self) -> bool:
        """Whether a request under the key is a replay (charged as one): what
        it names is final. A PENDING one may be settling right now. (A batch's
        BatchStatus.PENDING is the same string as TransactionStatus.PENDING.)"""
        return self.row is not None and self.row.status != TransactionStatus.PENDING

    def answers_unread(self, body_digest: str) -> bool:
        """Whether a request whose bytes have `body_digest` (sha256 of its
        path, content type and body, as sent) is a byte-identical retry of
        the finished request that made the row: then it is answered from the
        row without being parsed or validated, since it cannot ask for
        anything else (and retries are what replays mostly are: a double tap,
        a client's timeout). "" matches nothing. The one place this is decided,
        for single movements and batches alike."""
        return self.finished and bool(body_digest) and self.row.body_digest == body_digest


@dataclass(frozen=True)
class MovementResult:
    """The answer to a movement request: its transaction, and whether an
    earlier request had already finished it (a replay: 200 instead of 201)."""

    log: TransactionLog
    replayed: bool


# --- batches of payouts (POST /api/transfers/batch) --------------------------------


@dataclass(frozen=True)
class Payout:
    """One payout of a batch: a TRANSFER from the batch's source wallet under
    its own idempotency key."""

    destination_wallet_id: uuid.UUID
    amount: Decimal
    idempotency_key: str
    metadata: dict

    def movement(self, source_wallet_id: uuid.UUID) -> Movement:
        """The movement it is: the same as a single transfer's, so that its
        key answers GET /api/transfer/{key}, and POST /api/transfer replays it."""
        return Movement.transfer(
            source_wallet_id=source_wallet_id,
            destination_wallet_id=self.destination_wallet_id,
            amount=self.amount,
            metadata=self.metadata,
        )


@dataclass(frozen=True)
class BatchRequest:
    """A client's request for a batch of payouts from one source wallet, under
    the batch's idempotency key. `atomic`: all payouts complete or none does;
    otherwise each completes or fails on its own."""

    client: AbstractBaseUser
    idempotency_key: str
    source_wallet_id: uuid.UUID
    atomic: bool
    payouts: tuple[Payout, ...]

    def fingerprint(self) -> str:
        """What a replay of the batch key must ask for again: the same
        source, mode and payouts in the same order (amounts as numbers)."""
        return canonical_fingerprint(
            source=str(self.source_wallet_id),
            atomic=self.atomic,
            payouts=[
                [str(p.destination_wallet_id), f"{p.amount:.2f}", p.idempotency_key, p.metadata] for p in self.payouts
            ],
        )


@dataclass(frozen=True)
class PayoutOutcome:
    """What became of one payout of a batch: its transaction (None when its
    destination was unknown, as a single transfer to it would store none),
    and its status and error."""

    index: int
    idempotency_key: str
    destination_wallet_id: uuid.UUID
    amount: Decimal
    status: str
    transaction_id: uuid.UUID | None
    reference: str | None
    error_code: str
    error_message: str


@dataclass(frozen=True)
class BatchResult:
    """The answer to a batch request: the batch, each payout's outcome in the
    order given, and whether an earlier request had already settled it."""

    batch: TransferBatch
    payouts: list[PayoutOutcome]
    replayed: bool


# --- holds (POST /api/holds) -------------------------------------------------------


@dataclass(frozen=True)
class Expiry:
    """When a hold is to expire, as the client wrote it: an instant, or a
    number of seconds from when the request is served."""

    at: datetime | None = None
    in_seconds: int | None = None

    def instant(self, now: datetime) -> datetime:
        return self.at if self.at is not None else now + timedelta(seconds=self.in_seconds)

    def asked(self) -> dict:
        """What a replay must ask again (the relative form as written: a retry
        is the same request seconds later)."""
        if self.at is not None:
            return {"expiresAt": self.at.isoformat()}
        return {"expiresInSeconds": self.in_seconds}
