"""The ledger chain (reconciliation/chain.py, docs/operations.md "A provable
history"): a clean ledger verifies; a transaction changed, deleted or moved by
hand in the database is found at its exact position; committers that finish
out of order are never skipped; a published checkpoint proves the chain up to
it, even against an operator who rewrote every link after a change.

Tampering is done as an operator with psql would do it: raw SQL, and for the
append-only links, with triggers switched off (session_replication_role).

The chain appends only logs whose transaction is older than every running
one, so these tests commit for real (transaction=True): a log finished inside
a test's own transaction would never be below the horizon.
"""

import hashlib
import threading
import time
import uuid
from datetime import UTC
from decimal import Decimal
from io import StringIO

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.db.utils import DatabaseError
from django_redis import get_redis_connection

from events.models import Event, EventType
from reconciliation import chain, records
from reconciliation.models import ChainLink
from reconciliation.tasks import verify_ledger as verify_ledger_task
from transfers import services
from transfers.models import Movement, TransactionLog, TransactionStatus, TransactionType, business_day
from transfers.tests.concurrency import run_concurrently
from transfers.tests.factories import ApiUserFactory
from wallets.tests.factories import WalletFactory
from wallets.tests.test_admin import staff_client

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "/admin/transfers/transactionlog/"

# The horizon is the whole server's oldest running transaction: another
# session's (a bench loading a million rows in one transaction on the same
# PostgreSQL) holds every chain back until it ends.
HORIZON_PATIENCE_SECONDS = 180


def chain_everything(expected: int | None = None) -> int:
    """Extend until every finished log is chained (or `expected` links)."""
    deadline = time.monotonic() + HORIZON_PATIENCE_SECONDS
    want = expected if expected is not None else finished_logs().count()
    while True:
        chain.chain_extend()
        links = ChainLink.objects.count()
        if links >= want or time.monotonic() > deadline:
            return links
        time.sleep(0.05)


def finished_logs():
    return TransactionLog.objects.exclude(status=TransactionStatus.PENDING)


def chained_ids() -> list[uuid.UUID]:
    return list(ChainLink.objects.order_by("position").values_list("log_id", flat=True))


def sql(statement: str, params=()) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def tamper_links(*statements: tuple[str, list]) -> None:
    """Change ledger_chain past its append-only trigger, as a superuser can."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        for statement, params in statements:
            cursor.execute(statement, params)


@pytest.fixture(autouse=True)
def forget_chain_findings():
    """A broken chain checked here is recorded for /metrics (records.py);
    the metrics tests of later modules expect the books they check alone."""
    yield
    get_redis_connection("default").hdel(records._key(), records.CHAIN_DISCREPANCIES)


@pytest.fixture
def books(funded_wallet):
    """A small history through the services: deposits, transfers, a FAILED
    transfer, a withdrawal, and a reversal."""
    a, b = funded_wallet("500.00"), funded_wallet("100.00", owner=None)
    client = a.owner

    def transfer(key: str, amount: str):
        return services.transfer_create(
            client=client,
            source_wallet_id=a.pk,
            destination_wallet_id=b.pk,
            amount=Decimal(amount),
            idempotency_key=key,
            metadata={},
        ).log

    first = transfer("t1", "10.00")
    transfer("t2", "20.50")
    assert transfer("too-much", "9999.00").status == TransactionStatus.FAILED
    services.withdrawal_create(client=client, wallet_id=b.pk, amount=Decimal("5.00"), idempotency_key="w", metadata={})
    transfer("t3", "1.01")
    return {"a": a, "b": b, "client": client, "first": first}


def python_link_hashes() -> list[bytes]:
    """The chain recomputed in Python from the ORM's values, by the format
    docs/operations.md documents (not by CANONICAL_SQL): what an auditor's own
    verifier would do."""
    previous, hashes = chain.GENESIS, []
    for link in ChainLink.objects.order_by("position"):
        log = TransactionLog.objects.get(pk=link.log_id)
        status = TransactionStatus.COMPLETED if log.status == TransactionStatus.REVERSED else log.status
        completed = log.completed_at and log.completed_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        fields = [
            ("id", str(log.pk)),
            ("kind", log.type),
            ("status", str(status)),
            ("amount", f"{log.amount:.2f}"),
            ("currency", log.currency),
            ("source", str(log.source_wallet_id)),
            ("destination", str(log.destination_wallet_id)),
            ("reference", log.reference),
            ("completed_at", completed),
            ("error_code", log.error_code),
            ("reverses", str(log.reversal_of_id) if log.reversal_of_id else None),
        ]
        for column in chain.BALANCE_COLUMNS:
            value = getattr(log, column, None)  # NULL (a failed log's): the field is left out
            fields.append((column, None if value is None else f"{value:.2f}"))
        previous = hashlib.sha256(previous + chain.canonical_form(fields)).digest()
        hashes.append(previous)
    return hashes


# --- a clean ledger -------------------------------------------------------------------


def test_every_finished_transaction_is_chained_once_and_a_clean_ledger_verifies(books):
    finished = finished_logs().count()
    assert chain_everything() == finished
    assert sorted(chained_ids()) == sorted(finished_logs().values_list("pk", flat=True))
    assert list(ChainLink.objects.values_list("position", flat=True)) == list(range(1, finished + 1))

    report = chain.chain_verify()

    assert report.ok, report
    assert report.links == finished
    assert report.head.position == finished


def test_links_follow_the_documented_canonical_form(books):
    chain_everything()
    stored = [bytes(h) for h in ChainLink.objects.order_by("position").values_list("hash", flat=True)]
    assert python_link_hashes() == stored


def test_the_canonical_form_leaves_a_null_field_out_and_counts_bytes():
    form = chain.canonical_form([("reference", "TXN-Ü"), ("reverses", None), ("error_code", "")])
    assert form == "reference:6:TXN-Ü\nerror_code:0:\n".encode()


def test_a_failed_transaction_has_no_completed_at_line(books):
    chain_everything()
    failed = TransactionLog.objects.get(status=TransactionStatus.FAILED)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {chain.CANONICAL_SQL} FROM transaction_logs t WHERE t.id = %s", [failed.pk])  # noqa: S608
        (canonical,) = cursor.fetchone()
    assert "completed_at:" not in canonical
    assert "error_code:20:insufficient_balance\n" in canonical
    assert "status:6:FAILED\n" in canonical


def test_a_later_reversal_leaves_the_chain_holding(books, wallet_owner):
    chain_everything()
    before = bytes(ChainLink.objects.get(log_id=books["first"].pk).hash)

    compensation = services.transaction_reverse(
        log_id=books["first"].pk, reason="customer dispute", reversed_by=wallet_owner
    )
    chain_everything()

    assert TransactionLog.objects.get(pk=books["first"].pk).status == TransactionStatus.REVERSED
    assert bytes(ChainLink.objects.get(log_id=books["first"].pk).hash) == before
    assert ChainLink.objects.filter(log_id=compensation.pk).exists()
    assert chain.chain_verify().ok


def test_a_pending_log_has_no_finished_txid_and_settling_stamps_it(books):
    pending, _ = services._record_pending(
        client=books["client"],
        idempotency_key="crashed",
        fingerprint="0" * 64,
        movement=Movement(TransactionType.TRANSFER, Decimal("5.00"), {}, books["a"].pk, books["b"].pk),
    )

    def finished_txid():
        with connection.cursor() as cursor:
            cursor.execute("SELECT finished_txid FROM transaction_logs WHERE id = %s", [pending.pk])
            return cursor.fetchone()[0]

    assert finished_txid() is None
    chain_everything()
    assert pending.pk not in chained_ids()

    services.transaction_settle(log_id=pending.pk)
    assert finished_txid() is not None
    chain_everything()
    assert chained_ids()[-1] == pending.pk
    assert chain.chain_verify().ok


# --- tampering ------------------------------------------------------------------------


def position_of(log_id) -> int:
    return ChainLink.objects.get(log_id=log_id).position


def test_an_amount_changed_by_hand_is_found_at_its_position(books):
    chain_everything()
    victim = ChainLink.objects.get(position=3)
    sql("UPDATE transaction_logs SET amount = amount + 0.01 WHERE id = %s", [victim.log_id])

    report = chain.chain_verify()

    assert not report.ok
    assert (report.broken.position, report.broken.log_id, report.broken.reason) == (3, victim.log_id, "altered")


def test_a_status_changed_by_hand_is_found_at_its_position(books):
    chain_everything()
    failed = TransactionLog.objects.get(status=TransactionStatus.FAILED)
    sql(
        "UPDATE transaction_logs SET status = 'COMPLETED', error_code = '', error_message = '', completed_at = now() "
        "WHERE id = %s",
        [failed.pk],
    )

    broken = chain.chain_verify().broken

    assert (broken.position, broken.reason) == (position_of(failed.pk), "altered")


def test_a_transaction_deleted_by_hand_is_found_at_its_position(books):
    chain_everything()
    failed = TransactionLog.objects.get(status=TransactionStatus.FAILED)
    position = position_of(failed.pk)
    sql("DELETE FROM transaction_logs WHERE id = %s", [failed.pk])

    broken = chain.chain_verify().broken

    assert (broken.position, broken.log_id, broken.reason) == (position, failed.pk, "deleted")


def test_a_link_deleted_by_hand_is_found_at_the_next_position(books):
    chain_everything()
    tamper_links(("DELETE FROM ledger_chain WHERE position = 2", []))

    broken = chain.chain_verify().broken

    assert (broken.position, broken.reason) == (3, "missing_link")


def test_two_links_swapped_are_found_at_the_first(books):
    chain_everything()
    two, three = ChainLink.objects.get(position=2), ChainLink.objects.get(position=3)
    swap = "UPDATE ledger_chain SET log_id = %s, txid = %s WHERE position = %s"
    tamper_links(
        (swap, [uuid.uuid4(), three.txid, 2]), (swap, [two.log_id, two.txid, 3]), (swap, [three.log_id, three.txid, 2])
    )

    broken = chain.chain_verify().broken

    assert broken.position == 2
    assert broken.reason in ("reordered", "altered")


def test_a_transaction_moved_in_the_order_by_hand_is_found(books):
    chain_everything()
    victim = ChainLink.objects.get(position=2)
    sql("UPDATE transaction_logs SET finished_txid = finished_txid + 1000000 WHERE id = %s", [victim.log_id])

    broken = chain.chain_verify().broken

    assert (broken.position, broken.reason) == (2, "reordered")


def test_a_finished_transaction_the_chain_never_saw_is_reported(books):
    chain_everything()
    log = TransactionLog.objects.filter(status=TransactionStatus.COMPLETED).first()
    # An operator's insert with triggers off: finished, but no finished_txid.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(
            """
            INSERT INTO transaction_logs (id, client_id, idempotency_key, movement_fingerprint, body_digest,
                source_wallet_id, destination_wallet_id, amount, currency, type, status, reference, metadata,
                error_code, error_message, created_at, updated_at, completed_at)
            SELECT gen_random_uuid(), client_id, 'forged', movement_fingerprint, '', source_wallet_id,
                   destination_wallet_id, 1.00, currency, type, 'COMPLETED', 'TXN-FORGED00001', '{}', '', '',
                   now(), now(), now()
              FROM transaction_logs WHERE id = %s
            RETURNING id
            """,
            [log.pk],
        )
        (forged,) = cursor.fetchone()
    chain.chain_extend()

    report = chain.chain_verify()

    assert report.broken is None
    assert report.unchained == [forged]
    assert not report.ok


def test_links_are_append_only():
    log = TransactionLog.objects.create(
        client=ApiUserFactory(),
        idempotency_key="x",
        movement_fingerprint="-",
        source_wallet=WalletFactory(),
        destination_wallet=WalletFactory(),
        amount=Decimal("1.00"),
        currency="NGN",
        type=TransactionType.TRANSFER,
    )
    ChainLink.objects.create(position=1, log_id=log.pk, txid=1, hash=bytes(32))
    for statement in ("UPDATE ledger_chain SET hash = '\\x00'::bytea", "DELETE FROM ledger_chain"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            sql(statement)
    assert ChainLink.objects.count() == 1


# --- checkpoints ----------------------------------------------------------------------


def rewrite_chain_from(position: int) -> None:
    """What an operator who changed a transaction would do to hide it:
    recompute every link from `position` on (with CANONICAL_SQL, as the
    service would)."""
    links = list(ChainLink.objects.filter(position__gte=position).order_by("position"))
    previous = bytes(ChainLink.objects.get(position=position - 1).hash) if position > 1 else chain.GENESIS
    for link in links:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {chain.CANONICAL_SQL} FROM transaction_logs t WHERE t.id = %s", [link.log_id])  # noqa: S608
            (canonical,) = cursor.fetchone()
        previous = chain.link_hash(previous, canonical.encode())
        tamper_links(("UPDATE ledger_chain SET hash = %s WHERE position = %s", [previous, link.position]))


def test_a_published_checkpoint_holds_on_an_untouched_ledger(books, settings):
    settings.LEDGER_CHECKPOINT_CLIENT = books["client"].username
    chain_everything()
    published = chain.checkpoint_publish()

    report = chain.chain_verify(checkpoint=chain.parse_checkpoint(published["checkpoint"]))

    assert report.ok
    assert report.checkpoint.holds


def test_a_rewritten_chain_verifies_alone_but_not_against_a_checkpoint(books):
    chain_everything()
    head = chain.chain_head()
    sql("UPDATE transaction_logs SET amount = 0.01 WHERE id = (SELECT log_id FROM ledger_chain WHERE position = 2)")
    rewrite_chain_from(2)

    assert chain.chain_verify().ok  # the rewrite is consistent in itself...
    report = chain.chain_verify(checkpoint=(head.position, head.hash))
    assert not report.ok  # ...but not with what was published
    assert report.checkpoint.found != head.hash


def test_a_checkpoint_past_a_truncated_chain_does_not_hold(books):
    chain_everything()
    head = chain.chain_head()
    tamper_links(("DELETE FROM ledger_chain WHERE position = %s", [head.position]))

    report = chain.chain_verify(checkpoint=(head.position, head.hash))

    assert report.checkpoint.found is None
    assert not report.ok


def test_publishing_sends_ledger_checkpoint_to_the_configured_client_and_logs_it(books, settings, caplog):
    auditor = ApiUserFactory(username="auditor")
    settings.LEDGER_CHECKPOINT_CLIENT = "auditor"
    chain_everything()
    head = chain.chain_head()

    with caplog.at_level("INFO", logger="reconciliation.chain"):
        published = chain.checkpoint_publish()

    event = Event.objects.get(type=EventType.LEDGER_CHECKPOINT)
    assert event.client_id == auditor.pk
    assert event.data["checkpoint"] == f"{head.position}:{head.hash}" == published["checkpoint"]
    assert event.data["transactionId"] == str(head.log_id)
    assert any(r.getMessage() == f"ledger checkpoint {head.position}:{head.hash}" for r in caplog.records)


def test_without_a_configured_client_the_checkpoint_goes_to_the_log_only(books, settings):
    settings.LEDGER_CHECKPOINT_CLIENT = ""
    chain_everything()
    assert chain.checkpoint_publish() is not None
    assert not Event.objects.filter(type=EventType.LEDGER_CHECKPOINT).exists()


@pytest.mark.parametrize(
    "text", ["", "12", "x:" + "0" * 64, "0:" + "0" * 64, "²:" + "0" * 64, "3:abc", "3:" + "g" * 64, "3:" + "0 " * 32]
)
def test_a_malformed_checkpoint_is_refused(text):
    with pytest.raises(ValueError, match="POSITION:HASH"):
        chain.parse_checkpoint(text)


# --- concurrency ----------------------------------------------------------------------


def test_a_slow_committer_is_chained_in_its_place_not_skipped():
    """Transaction A finishes a log first but commits last; B finishes and
    commits in between. A tick meanwhile must chain neither (B is above the
    horizon A holds), and after A commits both are chained, A first: had B
    been chained alone, A would sort behind the head and be skipped forever."""
    source, destination, client = WalletFactory(), WalletFactory(), ApiUserFactory()
    logs = [
        TransactionLog.objects.create(
            client=client,
            idempotency_key=f"slow-{n}",
            movement_fingerprint="-",
            source_wallet=source,
            destination_wallet=destination,
            amount=Decimal("1.00"),
            currency="NGN",
            type=TransactionType.TRANSFER,
        )
        for n in range(2)
    ]
    db = connection.settings_dict
    params = {"host": db["HOST"] or "127.0.0.1", "port": db["PORT"] or 5432, "user": db["USER"], "dbname": db["NAME"]}
    fail = "UPDATE transaction_logs SET status = 'FAILED', error_code = 'x', error_message = 'y' WHERE id = %s"
    with psycopg.connect(**params) as slow, psycopg.connect(**params, autocommit=True) as fast:
        slow.execute(fail, [logs[0].pk])  # A: finished, its transaction still open
        fast.execute(fail, [logs[1].pk])  # B: finished and committed
        chain.chain_extend()
        assert chained_ids() == []
        slow.commit()

    assert chain_everything(expected=2) == 2
    assert chained_ids() == [logs[0].pk, logs[1].pk]
    assert chain.chain_verify().ok


def test_concurrent_committers_and_chain_ticks_never_skip_a_transaction(funded_wallet):
    """Transfers on many threads while ticks extend the chain: every finished
    log ends up chained once, contiguous, and the chain verifies."""
    wallets = [funded_wallet("1000.00") for _ in range(6)]
    client = wallets[0].owner
    stop = threading.Event()
    tick_errors: list[BaseException] = []

    def ticks():
        try:
            while not stop.is_set():
                chain.chain_extend(batch_size=7)
        except BaseException as exc:
            tick_errors.append(exc)
        finally:
            connection.close()

    def transfer(n: int):
        def call():
            source, destination = wallets[n % 6], wallets[(n + 1 + n // 6) % 6]
            if source.pk == destination.pk:
                destination = wallets[(n + 2) % 6]
            return services.transfer_create(
                client=client,
                source_wallet_id=source.pk,
                destination_wallet_id=destination.pk,
                amount=Decimal("1.00") + n,
                idempotency_key=f"c-{n}",
                metadata={},
            )

        return call

    tickers = [threading.Thread(target=ticks) for _ in range(2)]
    for ticker in tickers:
        ticker.start()
    try:
        run_concurrently([transfer(n) for n in range(120)], threads=6)
    finally:
        stop.set()
        for ticker in tickers:
            ticker.join(timeout=60)
    assert not tick_errors, tick_errors

    finished = finished_logs().count()
    assert chain_everything() == finished
    assert sorted(chained_ids()) == sorted(finished_logs().values_list("pk", flat=True))
    assert list(ChainLink.objects.values_list("position", flat=True)) == list(range(1, finished + 1))
    assert chain.chain_verify().ok


def test_a_tick_while_another_holds_the_chain_returns_at_once(books):
    db = connection.settings_dict
    params = {"host": db["HOST"] or "127.0.0.1", "port": db["PORT"] or 5432, "user": db["USER"], "dbname": db["NAME"]}
    with psycopg.connect(**params) as other:
        other.execute("SELECT pg_advisory_xact_lock(%s)", [chain.CHAIN_LOCK_KEY])
        assert chain.chain_extend() is None
    assert chain_everything() == finished_logs().count()


def test_logs_finished_before_the_chain_existed_are_chained_first(books):
    # As transfers/0016 leaves them: finished, no finished_txid.
    sql(
        "UPDATE transaction_logs SET finished_txid = NULL "
        "WHERE reference IN (SELECT reference FROM transaction_logs ORDER BY reference LIMIT 3)"
    )
    legacy = set(
        TransactionLog.objects.extra(where=["finished_txid IS NULL AND status <> 'PENDING'"]).values_list(
            "pk", flat=True
        )
    )
    assert legacy

    chain_everything()

    assert set(chained_ids()[: len(legacy)]) == legacy
    assert chain.chain_verify().ok


# --- the command and the admin --------------------------------------------------------


def test_verify_ledger_chain_passes_on_a_clean_ledger(books):
    chain_everything()
    head = chain.chain_head()
    out = StringIO()

    call_command("verify_ledger", "--chain", "--checkpoint", f"{head.position}:{head.hash}", stdout=out)

    assert f"The ledger chain holds: {head.position} links, head {head.position}:{head.hash}" in out.getvalue()
    assert f"checkpoint {head.position} holds" in out.getvalue()


def test_verify_ledger_chain_names_the_broken_position_and_exits_1(books):
    chain_everything()
    victim = ChainLink.objects.get(position=4)
    sql("UPDATE transaction_logs SET reference = 'TXN-CHANGED0001' WHERE id = %s", [victim.log_id])
    out, err = StringIO(), StringIO()

    with pytest.raises(SystemExit) as exited:
        call_command("verify_ledger", "--chain", stdout=out, stderr=err)

    assert exited.value.code == 1
    line = f"{'chain':<17} {'position 4':<36} transaction {victim.log_id}: its transaction or its hash was changed"
    assert line in out.getvalue().splitlines()
    assert "1 discrepancies found" in err.getvalue()


def test_the_hourly_verification_counts_a_broken_chain_as_a_discrepancy(books):
    chain_everything()
    assert verify_ledger_task() == 0
    # Deleting a FAILED log moves no money: only the chain can tell.
    sql("DELETE FROM transaction_logs WHERE status = 'FAILED'")

    assert verify_ledger_task() == 1
    assert (records.read().ledger_discrepancies, records.read().chain_discrepancies) == (0, 1)
    # A check of the invariants alone leaves the chain's finding standing.
    call_command("verify_ledger", stdout=StringIO())
    assert records.read().chain_discrepancies == 1


def test_verify_ledger_refuses_a_malformed_checkpoint():
    with pytest.raises(CommandError, match="POSITION:HASH"):
        call_command("verify_ledger", "--checkpoint", "12", stdout=StringIO())


VERIFY_CHAIN = "/admin/transfers/transactionlog/verify-chain/"


@pytest.mark.usefixtures("migrated_groups")
def test_the_admin_page_says_the_chain_holds_and_proves_a_checkpoint(books):
    chain_everything()
    head = chain.chain_head()
    support = staff_client("Support")

    page = support.get(VERIFY_CHAIN, {"checkpoint": f"{head.position}:{head.hash}"}).content.decode()

    assert 'id="chain-holds"' in page
    assert f"head {head.position}:{head.hash}; checkpoint {head.position} holds" in page
    assert 'href="/admin/transfers/transactionlog/verify-chain/"' in support.get(CHANGELIST).content.decode()


@pytest.mark.usefixtures("migrated_groups")
def test_the_admin_page_names_the_broken_position(books):
    chain_everything()
    victim = ChainLink.objects.get(position=2)
    sql("UPDATE transaction_logs SET amount = amount * 2 WHERE id = %s", [victim.log_id])

    page = staff_client("Support").get(VERIFY_CHAIN).content.decode()

    assert 'id="chain-broken"' in page
    assert f"<td>2</td><td>{victim.log_id}</td><td>its transaction or its hash was changed</td>" in page


@pytest.mark.usefixtures("migrated_groups")
def test_the_admin_page_tells_a_malformed_checkpoint_and_checks_nothing(books):
    page = staff_client("Support").get(VERIFY_CHAIN, {"checkpoint": "12"}).content.decode()
    assert 'id="checkpoint-error"' in page
    assert "POSITION:HASH" in page
    assert 'id="chain-holds"' not in page


@pytest.mark.usefixtures("migrated_groups")
def test_the_admin_page_is_refused_to_staff_who_may_not_reconcile():
    assert staff_client("Approver").get(VERIFY_CHAIN).status_code == 403


def test_a_statement_names_the_ledger_chains_link_of_its_last_movement(books, treasury_api):
    # reconciliation/apps.py registers the chain's lookup with the statements
    # at start-up: no test registers it here.
    wallet = books["a"]
    today = business_day(books["first"].completed_at).isoformat()  # the statement's days are Lagos days
    before = treasury_api.get(f"/api/wallets/{wallet.pk}/statement", {"from": today, "to": today}).json()["data"]
    assert (before["chainPosition"], before["chainHash"]) == (None, None)

    chain_everything()
    after = treasury_api.get(f"/api/wallets/{wallet.pk}/statement", {"from": today, "to": today}).json()["data"]

    last = after["movements"][-1]["id"]
    assert (after["chainPosition"], after["chainHash"]) == chain.chain_link(log_id=uuid.UUID(last))
