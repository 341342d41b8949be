"""How PostgreSQL runs SETTLE and SETTLE_MANY (transfers/engine.py): from
its generic plan once a connection has run it a few times, so that an
execute is not planned again (a plan cost 0.7 ms a transfer, more than the
execute itself); with each id array of the posting document read once,
whatever plan it chose (read once per row scanned, it took 360 ms of a
batch's settle); and a single transfer's wallets read by primary key in that
generic plan, however many wallets there are (scanned, they were 0.11 ms of
the statement's 0.63 per transfer)."""

import json
import re
import uuid
from decimal import Decimal

import pytest
from django.db import connection
from psycopg import sql as pgsql

from transfers import engine, services
from wallets.models import Wallet, WalletKind
from wallets.tests.factories import WalletFactory

pytestmark = pytest.mark.django_db


def transfer(source, destination) -> None:
    result = services.transfer_create(
        client=source.owner,
        source_wallet_id=source.pk,
        destination_wallet_id=destination.pk,
        amount=Decimal("1.00"),
        idempotency_key=f"plan-{uuid.uuid4()}",
        metadata={},
    )
    assert result.log.status == "COMPLETED"


def settle_plans() -> tuple[int, int]:
    """(custom plans, generic plans) this connection's SETTLE has run."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT custom_plans, generic_plans FROM pg_prepared_statements WHERE statement = %s", [sql(engine.SETTLE)]
        )
        (plans,) = cursor.fetchall()
    return plans


def sql(statement: str) -> str:
    """`statement` as PostgreSQL receives it from psycopg (its parameters $1, $2)."""
    return statement.replace("%(now)s", "$1").replace("%(p)s", "$2")


def test_after_its_first_five_executes_settle_runs_from_its_generic_plan(funded_wallet):
    source, destination = funded_wallet("100.00"), funded_wallet("0")

    for _ in range(8):
        transfer(source, destination)
    custom, generic = settle_plans()

    # PostgreSQL plans a prepared statement for its values five times, then
    # keeps the generic plan unless that one looks costlier.
    assert custom <= 5
    assert generic >= 3


@pytest.fixture
def settle_params(monkeypatch):
    """The parameters of the SETTLE statements run, in order."""
    sent = []
    original = engine._run

    def recording(statement, params):
        if statement in (engine.SETTLE, engine.SETTLE_MANY):
            sent.append(params)
        return original(statement, params)

    monkeypatch.setattr(engine, "_run", recording)
    return sent


def conditions_outside_init_plans(plan: dict) -> list[str]:
    """Every condition of `plan`'s nodes that runs per row, leaving out the
    subplans PostgreSQL runs once per execute (an InitPlan; EXPLAIN names a
    CTE's plan an InitPlan's child too, as "CTE legs")."""
    found = [
        plan[key]
        for key in ("Filter", "Index Cond", "Recheck Cond", "Join Filter", "Hash Cond", "Merge Cond")
        if key in plan
    ]
    for child in plan.get("Plans", []):
        if not child.get("Subplan Name", "").startswith("InitPlan"):
            found += conditions_outside_init_plans(child)
    return found


def generic_plan(statement: str, params: dict) -> dict:
    """EXPLAIN (VERBOSE) of `statement`'s generic plan, the one a connection
    keeps after five executes, run with `params` (the document typed jsonb,
    as PostgreSQL infers it from the statement psycopg sends)."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute(f"PREPARE settle_plan(timestamptz, jsonb) AS {sql(statement)}")
        # EXPLAIN takes no parameters of its own: the values written in.
        explain = pgsql.SQL("EXPLAIN (VERBOSE, FORMAT JSON) EXECUTE settle_plan({}, {})").format(
            pgsql.Literal(params["now"]), pgsql.Literal(params["p"])
        )
        cursor.execute(explain.as_string(connection.connection))
        (plan,) = cursor.fetchone()[0]
        cursor.execute("DEALLOCATE settle_plan")
    return plan


@pytest.mark.parametrize("statement", ["SETTLE", "SETTLE_MANY"])
@pytest.mark.parametrize("scan", ["index", "sequential"])
def test_each_id_of_the_posting_is_read_once_whatever_the_plan(funded_wallet, settle_params, scan, statement):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    transfer(source, destination)
    params = settle_params[-1]  # the transfer's (its wallets were funded through SETTLE too)
    document = json.loads(params["p"])
    # What a posting of more than two wallets carries besides (apply_statement).
    document["wallet_ids"] = engine.uuid_array_text([leg["id"] for leg in document["legs"]])

    with connection.cursor() as cursor:
        if scan == "sequential":
            # The plan the planner chose for a batch's 600 wallets of 1,000.
            cursor.execute("SET LOCAL enable_indexscan = off")
            cursor.execute("SET LOCAL enable_bitmapscan = off")
    plan = generic_plan(getattr(engine, statement), {**params, "p": json.dumps(document)})

    conditions = conditions_outside_init_plans(plan["Plan"])
    assert any("w.id = ANY" in condition for condition in conditions), conditions
    assert any("t.id = ANY" in condition for condition in conditions), conditions
    # A condition that runs per row and reads the document (`$2 -> 'legs'`,
    # `($2 ->> 'wallet_ids')::uuid[]`) reads it again for every row; one
    # read once names its InitPlan's result (`ANY ($0)`, `ARRAY[$3, $4]`).
    assert not [c for c in conditions if re.search(r"'(legs|wallet_ids|log_ids)'", c)], conditions


def scans_of(plan: dict, relation: str) -> list[str]:
    """The node types of `plan` that read `relation` (a table's name)."""
    found = [plan["Node Type"]] if plan.get("Relation Name") == relation and "Scan" in plan["Node Type"] else []
    for child in plan.get("Plans", []):
        found += scans_of(child, relation)
    return found


def test_a_single_transfers_generic_plan_reads_its_wallets_by_primary_key_among_a_thousand(
    funded_wallet, settle_params
):
    source, destination = funded_wallet("100.00"), funded_wallet("0")
    Wallet.objects.bulk_create(WalletFactory.build_batch(1000, owner=source.owner, kind=WalletKind.CUSTOMER))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE wallets")
    transfer(source, destination)

    plan = generic_plan(engine.SETTLE, settle_params[-1])

    assert scans_of(plan["Plan"], "wallets") in (["Index Scan"], ["Bitmap Heap Scan"]), plan
