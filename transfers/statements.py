"""A wallet's balance as of any instant, and its statement over a period
(docs/api.md, "the balance at an instant" and "a statement").

Every log that moved money carries its wallets' balances after it
(source_balance_after, destination_balance_after), written by the engine in
the statement that moved the money (transfers/engine.py, decide and SETTLE).
So the balance at an instant is the balance after the wallet's last movement
at or before it: one probe of each side's index (idx_txlogs_source_moved,
idx_txlogs_destination_moved: wallet, completed_at, batch_index). A log
settled before those columns existed (migration 0015) has them NULL; for it
the balance is the sum of the wallet's movements up to the instant, which is
what the stored balances after are, by construction.

A wallet's movements are ordered by completed_at and then batch_index: a
wallet's settle transactions are serialised by its row lock and each takes
its time after the lock, and the payouts of one batch, which share their
completed_at, are decided in batch_index order.

A statement covers whole days in the business time zone
(transfers.models.business_zone: settings.BUSINESS_TIME_ZONE): from
the start of `first_day` to the start of the day after `last_day`. Nothing
here knows of HTTP: the views read the query (transfers.serializers) and the
documents are rendered by transfers/statement_documents.py.

The statement names the chain position and hash of its last movement when a
chain lookup is registered (register_chain_lookup); with none, both are None.
"""

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction

from transfers.models import business_zone
from wallet_project.db.base import fetch, run
from wallets.models import Wallet

ZERO = Decimal("0.00")


class StatementTooLong(Exception):
    """A period holds more than STATEMENT_MAX_ROWS movements: ask for a
    shorter one."""

    def __init__(self, limit: int):
        super().__init__(f"More than {limit} movements in this period: ask for a shorter one.")
        self.limit = limit


# --- the chain hook -----------------------------------------------------------


@dataclass(frozen=True)
class ChainLink:
    """Where a transaction stands in the ledger's hash chain: its position
    (from 1) and its link's hash (hex SHA-256)."""

    position: int
    hash: str


ChainLookup = Callable[[uuid.UUID], ChainLink | None]
_chain_lookup: ChainLookup | None = None


def register_chain_lookup(lookup: ChainLookup | None) -> ChainLookup | None:
    """Install the function that finds a transaction's chain link by its id
    (None while the transaction is not chained yet). The statement names the
    link of its last movement with it; None unregisters it. Returns the
    lookup it replaces (reconciliation registers the ledger chain's at
    start-up: reconciliation/apps.py)."""
    global _chain_lookup
    previous, _chain_lookup = _chain_lookup, lookup
    return previous


def chain_link(log_id: uuid.UUID | None) -> ChainLink | None:
    """The registered lookup's answer for `log_id`, None without either."""
    if log_id is None or _chain_lookup is None:
        return None
    return _chain_lookup(log_id)


# --- balance as of an instant ---------------------------------------------------

# The wallet's last movement before %(before)s on either side, with its
# balance after it for this wallet: one backward step of each side's index.
_LAST_MOVEMENT = """
SELECT balance_after, completed_at FROM (
  (SELECT source_balance_after AS balance_after, completed_at, batch_index FROM transaction_logs
    WHERE source_wallet_id = %(wallet)s AND completed_at IS NOT NULL AND completed_at < %(before)s
    ORDER BY completed_at DESC, batch_index DESC LIMIT 1)
  UNION ALL
  (SELECT destination_balance_after, completed_at, batch_index FROM transaction_logs
    WHERE destination_wallet_id = %(wallet)s AND completed_at IS NOT NULL AND completed_at < %(before)s
    ORDER BY completed_at DESC, batch_index DESC LIMIT 1)
) AS last ORDER BY completed_at DESC, batch_index DESC LIMIT 1
"""
# For a last movement settled before the balances after were kept: what
# came in minus what went out, before %(before)s.
_SUM_BEFORE = """
SELECT coalesce((SELECT sum(amount) FROM transaction_logs
                  WHERE destination_wallet_id = %(wallet)s AND completed_at IS NOT NULL
                    AND completed_at < %(before)s), 0)
     - coalesce((SELECT sum(amount) FROM transaction_logs
                  WHERE source_wallet_id = %(wallet)s AND completed_at IS NOT NULL
                    AND completed_at < %(before)s), 0)
"""


def balance_before(*, wallet_id: uuid.UUID, before: dt.datetime) -> Decimal:
    """The wallet's balance just before the instant `before` (aware): after
    every movement that completed earlier, none at or after it. 0.00 before
    its first movement."""
    params = {"wallet": wallet_id, "before": before}
    rows = fetch(connection, _LAST_MOVEMENT, params)
    if not rows:
        return ZERO
    balance_after, _ = rows[0]
    if balance_after is None:  # settled before migration 0015
        balance_after = fetch(connection, _SUM_BEFORE, params)[0][0]
    return Decimal(balance_after).quantize(ZERO)


def balance_at(*, wallet: Wallet, at: dt.datetime) -> Decimal:
    """The wallet's balance at the instant `at` (aware): after every movement
    that completed at or before it. `wallet` is one its caller may read
    (wallets.selectors.customer_wallet_get)."""
    return balance_before(wallet_id=wallet.pk, before=at + dt.timedelta(microseconds=1))


# --- a statement ----------------------------------------------------------------


@dataclass(frozen=True)
class Movement:
    """One movement of a statement, as its wallet sees it: `direction`
    CREDIT (money in) or DEBIT (money out); the counterparty is the other
    wallet (its id and kind, as the wallet's history shows them);
    `balance_after` the wallet's balance once it moved."""

    id: uuid.UUID
    reference: str
    type: str
    status: str
    direction: str
    amount: Decimal
    counterparty_wallet_id: uuid.UUID
    counterparty_wallet_kind: str
    reversal_of: uuid.UUID | None
    completed_at: dt.datetime
    balance_after: Decimal

    @property
    def signed_amount(self) -> Decimal:
        return self.amount if self.direction == "CREDIT" else -self.amount


@dataclass(frozen=True)
class Statement:
    """A wallet's movements over whole days in the business time zone, from the
    start of `first_day` to the end of `last_day`: [starts_at, ends_at).
    closing_balance = opening_balance + total_in - total_out."""

    wallet: Wallet
    first_day: dt.date
    last_day: dt.date
    starts_at: dt.datetime
    ends_at: dt.datetime
    opening_balance: Decimal
    closing_balance: Decimal
    total_in: Decimal
    total_out: Decimal
    movements: list[Movement]
    chain: ChainLink | None


def day_start(day: dt.date) -> dt.datetime:
    """Midnight at the start of `day` in the business time zone, aware."""
    return dt.datetime.combine(day, dt.time(), tzinfo=business_zone())


# Both sides, in the order the wallet's balance moved; the kind of the other
# wallet joined in. At most %(limit)s rows.
_MOVEMENTS = """
SELECT m.id, m.reference, m.type, m.status, m.direction, m.amount, m.counterparty, w.kind, m.reversal_of_id,
       m.completed_at, m.balance_after
  FROM (SELECT id, reference, type, status, 'DEBIT' AS direction, amount, destination_wallet_id AS counterparty,
               reversal_of_id, completed_at, batch_index, source_balance_after AS balance_after
          FROM transaction_logs
         WHERE source_wallet_id = %(wallet)s AND completed_at IS NOT NULL
           AND completed_at >= %(starts)s AND completed_at < %(ends)s
        UNION ALL
        SELECT id, reference, type, status, 'CREDIT', amount, source_wallet_id,
               reversal_of_id, completed_at, batch_index, destination_balance_after
          FROM transaction_logs
         WHERE destination_wallet_id = %(wallet)s AND completed_at IS NOT NULL
           AND completed_at >= %(starts)s AND completed_at < %(ends)s) AS m
  JOIN wallets w ON w.id = m.counterparty
 ORDER BY m.completed_at, m.batch_index
 LIMIT %(limit)s
"""


def statement(*, wallet: Wallet, first_day: dt.date, last_day: dt.date) -> Statement:
    """The statement of `wallet` (one its caller may read) for the days
    `first_day` to `last_day` inclusive. The caller has checked the range
    (first_day <= last_day, at most STATEMENT_MAX_DAYS days).

    Raises StatementTooLong past STATEMENT_MAX_ROWS movements. Read in one
    transaction (REPEATABLE READ), so the opening balance and the movements
    are of one snapshot."""
    starts_at, ends_at = day_start(first_day), day_start(last_day + dt.timedelta(days=1))
    limit = settings.STATEMENT_MAX_ROWS
    own_transaction = not connection.in_atomic_block
    with transaction.atomic():
        if own_transaction:  # else the caller's transaction, as it is
            run(connection, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", [])
        opening = balance_before(wallet_id=wallet.pk, before=starts_at)
        params = {"wallet": wallet.pk, "starts": starts_at, "ends": ends_at, "limit": limit + 1}
        rows = fetch(connection, _MOVEMENTS, params)
    if len(rows) > limit:
        raise StatementTooLong(limit)
    movements, running = [], opening
    total_in = total_out = ZERO
    for row in rows:
        *fields, stored_after = row
        amount = fields[5]
        if fields[4] == "CREDIT":
            running += amount
            total_in += amount
        else:
            running -= amount
            total_out += amount
        # The stored balance is the record; a log settled before migration
        # 0015 has none, and the running sum stands in for it.
        running = stored_after if stored_after is not None else running
        movements.append(Movement(*fields, balance_after=running))
    return Statement(
        wallet=wallet,
        first_day=first_day,
        last_day=last_day,
        starts_at=starts_at,
        ends_at=ends_at,
        opening_balance=opening,
        closing_balance=running,
        total_in=total_in,
        total_out=total_out,
        movements=movements,
        chain=chain_link(movements[-1].id if movements else None),
    )
