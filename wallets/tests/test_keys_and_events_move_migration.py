"""Migration wallets/0017 (with clients/0001 and events/0001): API keys,
events and webhooks move to apps of their own without touching a row, and
every permission keeps its id and its grants under its new label, from a
database at the release before the move, and back."""

import importlib
import uuid

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader

pytestmark = pytest.mark.django_db(transaction=True)

# The release before the move: wallets at 0016, the new apps not yet there.
BEFORE = [("wallets", "0016_wallet_held"), ("clients", None), ("events", None)]
AFTER = [("wallets", "0017_keys_and_events_move_to_their_apps")]
MOVED = importlib.import_module("wallets.migrations.0017_keys_and_events_move_to_their_apps").MOVED
ensure_permissions = importlib.import_module("transfers.migrations.0002_api_client_groups").ensure_permissions


def migrate(targets):
    """Migrate to `targets`; the models as the migrations applied then see them."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    loader = MigrationLoader(connection)
    return loader.project_state([node for node in loader.applied_migrations if node in loader.graph.nodes]).apps


def labels(apps) -> dict[str, list[str]]:
    """model -> the app labels of its content types, for the moved models."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    found: dict[str, list[str]] = {model: [] for model in MOVED}
    for label, model in ContentType.objects.filter(model__in=MOVED).values_list("app_label", "model"):
        found[model].append(label)
    return found


def grants(apps, group_name: str) -> set[tuple[str, str, int]]:
    Group = apps.get_model("auth", "Group")
    return set(Group.objects.get(name=group_name).permissions.values_list("content_type__app_label", "codename", "id"))


def test_keys_events_and_their_permissions_move_with_their_rows_ids_and_grants(back_to_latest):
    apps = migrate(BEFORE)
    ensure_permissions(apps)
    User, Group = apps.get_model("auth", "User"), apps.get_model("auth", "Group")
    Permission, LogEntry = apps.get_model("auth", "Permission"), apps.get_model("admin", "LogEntry")
    ApiKey, Event = apps.get_model("wallets", "ApiKey"), apps.get_model("wallets", "Event")
    client = User.objects.create(username=f"client-{uuid.uuid4()}")
    key = ApiKey.objects.create(client=client, prefix="wk_movekey", digest="a" * 64)
    event = Event.objects.create(client=client, type="wallet.frozen", data={"id": "w"})
    wallets_permission = {
        codename: Permission.objects.get(content_type__app_label="wallets", codename=codename)
        for codename in ("add_apikey", "change_apikey", "view_event", "resend_event", "view_webhookdelivery")
    }
    keepers = Group.objects.create(name=f"keepers-{uuid.uuid4()}")
    keepers.permissions.add(*wallets_permission.values())
    person = User.objects.create(username=f"support-{uuid.uuid4()}", is_staff=True)
    person.user_permissions.add(wallets_permission["resend_event"])
    history = LogEntry.objects.create(
        user=person, content_type=wallets_permission["add_apikey"].content_type, object_id=str(key.pk),
        object_repr=key.prefix, action_flag=1,
    )  # fmt: skip
    before = grants(apps, keepers.name)

    apps = migrate(AFTER)

    assert labels(apps) == {model: [app] for model, app in MOVED.items()}
    # The same permission rows (same ids), now under the models' new apps.
    assert grants(apps, keepers.name) == {
        (MOVED[codename.split("_", 1)[1]], codename, permission_id) for _, codename, permission_id in before
    }
    User = apps.get_model("auth", "User")
    person_grants = set(
        User.objects.get(pk=person.pk).user_permissions.values_list("content_type__app_label", "codename")
    )
    assert person_grants == {("events", "resend_event")}
    # No row was touched, and the admin's history names the key where it is now.
    assert apps.get_model("clients", "ApiKey").objects.get(pk=key.pk).prefix == "wk_movekey"
    assert apps.get_model("events", "Event").objects.get(pk=event.pk).data == {"id": "w"}
    moved_history = apps.get_model("admin", "LogEntry").objects.get(pk=history.pk)
    assert (moved_history.content_type.app_label, moved_history.content_type.model) == ("clients", "apikey")

    # And back: the release before finds its permissions where it left them.
    apps = migrate(BEFORE)
    assert labels(apps) == {model: ["wallets"] for model in MOVED}
    assert grants(apps, keepers.name) == before


def test_content_types_made_while_a_model_was_in_both_apps_are_merged_keeping_every_grant(back_to_latest):
    # A data migration that creates permissions (transfers' ensure_permissions)
    # may run between events/0001 and wallets/0017, when the state holds the
    # models in both apps: both labels then have content types and permissions.
    apps = migrate(BEFORE)
    ensure_permissions(apps)
    Group, Permission = apps.get_model("auth", "Group"), apps.get_model("auth", "Permission")
    old_view = Permission.objects.get(content_type__app_label="wallets", codename="view_event")
    early = Group.objects.create(name=f"early-{uuid.uuid4()}")
    early.permissions.add(old_view)

    apps = migrate([("clients", "0001_initial"), ("events", "0001_initial")])
    ensure_permissions(apps)
    Group, Permission = apps.get_model("auth", "Group"), apps.get_model("auth", "Permission")
    late = Group.objects.create(name=f"late-{uuid.uuid4()}")
    late.permissions.add(Permission.objects.get(content_type__app_label="events", codename="view_event"))
    assert sorted(labels(apps)["event"]) == ["events", "wallets"]

    apps = migrate(AFTER)

    assert labels(apps) == {model: [app] for model, app in MOVED.items()}
    assert grants(apps, early.name) == grants(apps, late.name) == {("events", "view_event", old_view.pk)}
