"""Fixtures shared by every app's tests: API clients with keys and groups,
and wallets funded through the real deposit service (never by writing a
balance, so the books balance in every test)."""

import importlib
import os
import uuid
from contextlib import contextmanager
from decimal import Decimal

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission
from django.db import connections
from rest_framework.test import APIClient

from clients.api_keys import api_key_issue
from reconciliation.tests import faults
from transfers.tests.factories import ApiUserFactory
from wallet_project.db.routers import REPLICA
from wallet_project.db.routers import health as replica_health
from wallet_project.tests.clusters import Address, PgBouncer, Replica
from wallets.tests.factories import WalletFactory


def pytest_configure(config):
    # Keep this run's Redis keys (transfer locks) apart from a running
    # service's and from other runs'.
    settings.CACHES["default"]["KEY_PREFIX"] = f"test-{uuid.uuid4().hex[:8]}"
    # Tests change keys and groups inside a test transaction, where the cache's
    # invalidation (after commit) never runs; the per-process cache has tests
    # of its own (clients/tests/test_authentication.py, with it enabled).
    settings.API_AUTH_CACHE_SECONDS = 0
    # Every test client calls from 127.0.0.1, so failed authentications and
    # requests without a key from all tests would add up against one address
    # (and a server a test starts reads the environment): the tests of those
    # limits set their own (wallet_project/tests/test_auth_failure_throttle.py).
    unlimited = "1000000/min"
    for scope in ("auth_failures", "no_key"):
        settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][scope] = unlimited
        os.environ[f"THROTTLE_RATE_{scope.upper()}"] = unlimited


# Groups that data migrations create. The flush that ends a transactional test
# empties every table; post_migrate then recreates content types and
# permissions but never these, so they are put back on demand.
MIGRATED_GROUPS = {
    **importlib.import_module("transfers.migrations.0002_api_client_groups").API_CLIENT_GROUPS,
    **importlib.import_module("transfers.migrations.0003_staff_groups").STAFF_GROUPS,
    # Tenancy: Disbursement client, and Auditor as it is since.
    **importlib.import_module("transfers.migrations.0007_pay_other_clients").GROUPS,
}
# Tenancy's groups (the Disbursement client, the Auditor's wider reads).
MIGRATED_GROUPS.update(importlib.import_module("transfers.migrations.0007_pay_other_clients").GROUPS)
_event_admin = importlib.import_module("transfers.migrations.0009_event_admin_permissions")
for _group in _event_admin.GROUPS:
    MIGRATED_GROUPS[_group] = [*MIGRATED_GROUPS[_group], *_event_admin.EVENT_PERMISSIONS]
_give_wallet = importlib.import_module("transfers.migrations.0011_give_wallet_permission")
for _group in _give_wallet.GROUPS:
    MIGRATED_GROUPS[_group] = [*MIGRATED_GROUPS[_group], *_give_wallet.PERMISSIONS]
# Holds: Finance voids one from the admin.
_holds = importlib.import_module("transfers.migrations.0018_holds")
for _group in _holds.GROUPS:
    MIGRATED_GROUPS[_group] = [*MIGRATED_GROUPS[_group], *_holds.PERMISSIONS]
# Four eyes: the Approver group, and what Support and Finance gained.
_corrections = importlib.import_module("corrections.migrations.0002_approver_group")
MIGRATED_GROUPS.update(_corrections.GROUPS)
for _group, _permissions in _corrections.GRANTS.items():
    MIGRATED_GROUPS[_group] = [*MIGRATED_GROUPS[_group], *_permissions]

# Tier limits: what clients, Support and Finance gained.
for _group, _permissions in importlib.import_module("transfers.migrations.0014_daily_totals").GRANTS.items():
    MIGRATED_GROUPS[_group] = [*MIGRATED_GROUPS[_group], *_permissions]


# The data migrations above name each permission by the app its model was in
# then; wallets' 0017 moved API keys, events and webhooks (and their
# permissions) to apps of their own.
_MOVED = importlib.import_module("wallets.migrations.0017_keys_and_events_move_to_their_apps").MOVED
for _group, _permissions in MIGRATED_GROUPS.items():
    MIGRATED_GROUPS[_group] = [
        (_MOVED.get(codename.split("_", 1)[1], app) if app == "wallets" else app, codename)
        for app, codename in _permissions
    ]


def ensure_migrated_groups() -> None:
    if Group.objects.filter(name__in=MIGRATED_GROUPS).count() == len(MIGRATED_GROUPS):
        return
    for app_config in apps.get_app_configs():
        create_permissions(app_config, verbosity=0)
    for name, codenames in MIGRATED_GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(
            Permission.objects.get(content_type__app_label=app, codename=codename) for app, codename in codenames
        )


@pytest.fixture
def migrated_groups(db) -> None:
    """The groups of the data migrations, present even after a transactional test."""
    ensure_migrated_groups()


def make_api_client(*group_names: str, user=None) -> APIClient:
    """An API client in these groups, with a new API key: `user`, or a new one."""
    ensure_migrated_groups()
    user = user or ApiUserFactory()
    user.groups.add(*Group.objects.filter(name__in=group_names))
    key = api_key_issue(client=user).key
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    client.user = user
    # The key in clear exists only here, as it would only in the client's hands.
    client.api_key = key
    return client


@pytest.fixture
def wallet_owner(db):
    """The API client a test acts as: treasury_api and transfer_api
    authenticate as it, and funded_wallet's wallets are its own (tenancy).
    A test of another client makes one with make_api_client."""
    return ApiUserFactory()


@pytest.fixture
def treasury_api(wallet_owner) -> APIClient:
    """The wallet owner's client, allowed to transfer, deposit and withdraw."""
    return make_api_client("Treasury client", user=wallet_owner)


@pytest.fixture
def transfer_api(wallet_owner) -> APIClient:
    """The wallet owner's client, allowed only to open wallets and transfer
    (with treasury_api in the same test, both are one client in both groups)."""
    return make_api_client("Transfer client", user=wallet_owner)


@pytest.fixture
def fast_webhooks(settings):
    """Webhooks to the tests' receivers on loopback, with short timeouts and retries."""
    settings.WEBHOOK_ALLOW_LOOPBACK = True
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.5
    settings.WEBHOOK_RETRY_BASE_SECONDS = 0.05
    settings.WEBHOOK_RETRY_CAP_SECONDS = 0.2


@pytest.fixture
def receiver():
    """A webhook receiver on loopback that verifies every request (events/tests/receiver.py)."""
    from events.tests.receiver import Receiver

    receiver = Receiver()
    yield receiver
    receiver.stop()


@pytest.fixture
def funded_wallet(wallet_owner):
    """funded_wallet(amount, currency="NGN", owner=wallet_owner) -> a customer
    wallet of `owner` holding amount, put there by a real deposit from the
    settlement wallet (made by its owner, as tenancy requires)."""
    from transfers.services import deposit_create

    def make(amount: Decimal | str = "1000.00", owner=None, **wallet_fields):
        owner = owner or wallet_owner
        wallet = WalletFactory(owner=owner, **wallet_fields)
        if Decimal(amount) > 0:
            deposit_create(
                client=owner,
                wallet_id=wallet.pk,
                amount=Decimal(amount),
                idempotency_key=f"fund-{uuid.uuid4()}",
                metadata={},
            )
        wallet.refresh_from_db()
        return wallet

    return make


# --- PgBouncer and the streaming replica (wallet_project/tests/clusters.py) -------


@pytest.fixture(scope="session")
def primary(django_db_setup) -> Address:
    """Where the test database lives: the local PostgreSQL, reached directly."""
    db = connections["default"].settings_dict
    return Address(db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432), db["USER"] or "postgres")


@pytest.fixture(scope="session")
def pgbouncer(primary):
    """A PgBouncer of the suite's own, in transaction pooling, in front of the primary."""
    bouncer = PgBouncer(primary).start()
    yield bouncer
    bouncer.stop()


@pytest.fixture(scope="session")
def replica_cluster(primary):
    """A hot standby of the primary (so of the test database too), streaming."""
    replica = Replica(primary).create()
    yield replica
    replica.destroy()


@contextmanager
def routed_through(bouncer: PgBouncer):
    """Every connection the default alias opens goes through `bouncer`, with the
    settings DATABASE_POOL_MODE=transaction gives (wallet_project/settings.py)."""
    dicts = {id(d): d for d in (settings.DATABASES["default"], connections["default"].settings_dict)}.values()
    saved = [(d, {**d, "OPTIONS": dict(d["OPTIONS"])}) for d in dicts]
    connections["default"].close()
    for db in dicts:
        db.update(HOST=bouncer.address.host, PORT=str(bouncer.address.port), DISABLE_SERVER_SIDE_CURSORS=True)
        db["OPTIONS"].pop("options", None)
        db["OPTIONS"]["prepare_threshold"] = None
    pool_mode, settings.DATABASE_POOL_MODE = settings.DATABASE_POOL_MODE, "transaction"
    faults.pooler = bouncer
    try:
        yield
    finally:
        connections["default"].close()
        faults.pooler = None
        settings.DATABASE_POOL_MODE = pool_mode
        for db, before in saved:
            db.clear()
            db.update(before)


def pytest_generate_tests(metafunc):
    # A module marked through_pgbouncer runs twice: straight to PostgreSQL,
    # then through PgBouncer in transaction pooling.
    # through_pgbouncer(only=True): through PgBouncer only.
    marker = metafunc.definition.get_closest_marker("through_pgbouncer")
    if marker:
        paths = ["pgbouncer"] if marker.kwargs.get("only") else ["direct", "pgbouncer"]
        metafunc.parametrize("database_path", paths, indirect=True, scope="module")


@pytest.fixture(scope="module", autouse=True)
def database_path(request):
    """How the module's tests reach PostgreSQL: "direct" or "pgbouncer".
    Module-scoped, so the switch happens before any test opens a transaction."""
    path = getattr(request, "param", "direct")
    if path == "direct":
        yield path
        return
    with routed_through(request.getfixturevalue("pgbouncer")):
        yield path


@pytest.fixture(scope="module")
def replica_alias(replica_cluster):
    """The replica as DATABASE_REPLICA_URL configures it (wallet_project/settings.py),
    pointed at the test database on the streaming standby. Module-scoped: it
    must exist before pytest-django sets up each test's allowed databases, so
    a module that uses it lists it, as django_db(databases=["default", "replica"]);
    a mirror of the default, it is never flushed."""
    primary_db = connections["default"].settings_dict
    settings.DATABASES[REPLICA] = {
        **primary_db,
        "HOST": replica_cluster.address.host,
        "PORT": str(replica_cluster.address.port),
        "OPTIONS": {**primary_db["OPTIONS"], "connect_timeout": 2},
        "TEST": {**primary_db["TEST"], "MIRROR": "default"},
    }
    yield replica_cluster
    connections[REPLICA].close()
    del connections[REPLICA]
    del settings.DATABASES[REPLICA]


@pytest.fixture
def replica(replica_alias, transactional_db, settings):
    """The streaming replica, caught up, checked on every read (no caching
    between checks); running and replaying again after the test."""
    settings.DATABASE_REPLICA_CHECK_SECONDS = 0
    replica_health.checked_at = float("-inf")
    replica_alias.wait_for_replay()
    yield replica_alias
    connections[REPLICA].close()
    if not replica_alias.running():
        replica_alias.start()
    replica_alias.resume_replay()


@pytest.fixture
def back_to_latest():
    """For a migration test: whatever it does, the database ends fully
    migrated again for the tests after it."""
    yield
    from wallet_project.tests.migrating import migrate_to_latest

    migrate_to_latest()
