"""Issuing, listing and revoking API keys: the service, the commands, the admin,
and the migration that hashes the DRF tokens of existing clients in place."""

import hashlib
import importlib
import re
import secrets
import threading
from io import StringIO

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.db import close_old_connections, connection
from django.db.migrations.loader import MigrationLoader
from rest_framework.test import APIClient

from clients.api_keys import MAX_LIVE_KEYS, ApiKeyError, api_key_issue, api_key_list, api_key_revoke
from clients.models import ApiKey
from conftest import make_api_client
from transfers.tests.factories import ApiUserFactory

pytestmark = pytest.mark.django_db

hash_drf_tokens = importlib.import_module("wallets.migrations.0006_hash_drf_tokens").hash_drf_tokens
# The models as that migration sees them: ApiKey was in wallets then.
apps = MigrationLoader(None, ignore_no_migrations=True).project_state(("wallets", "0006_hash_drf_tokens")).apps


def api_with(key: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return api


def can_read(key: str) -> int:
    return api_with(key).get("/api/wallets?userId=7d0e1c5e-8f6a-4a43-9e4f-0e8d6c1f2a10").status_code


# --- the service ------------------------------------------------------------------------


def test_an_issued_key_is_stored_only_as_its_sha256_with_a_public_prefix():
    issued = api_key_issue(client=ApiUserFactory(), name="mobile backend")

    stored = ApiKey.objects.get(pk=issued.api_key.pk)
    assert stored.digest == hashlib.sha256(issued.key.encode()).hexdigest()
    assert issued.key.startswith(stored.prefix + "_") and stored.prefix.startswith("wk_")
    assert len(issued.key) - len(stored.prefix) > 40  # 256 secret bits after the prefix
    assert issued.key not in {str(getattr(stored, f.attname)) for f in ApiKey._meta.concrete_fields}


def test_a_client_holds_two_live_keys_and_a_third_is_refused_until_one_is_revoked(migrated_groups):
    api = make_api_client("Transfer client")
    second = api_key_issue(client=api.user, name="rotation")

    with pytest.raises(ApiKeyError, match="already holds 2 live keys"):
        api_key_issue(client=api.user)

    api_key_revoke(api_key=ApiKey.objects.get(client=api.user, name=""))
    third = api_key_issue(client=api.user)
    assert {k.prefix for k in api_key_list(client=api.user).filter(revoked_at__isnull=True)} == {
        second.api_key.prefix,
        third.api_key.prefix,
    }
    assert (can_read(api.api_key), can_read(second.key), can_read(third.key)) == (401, 200, 200)


@pytest.mark.django_db(transaction=True)
def test_issues_at_once_never_pass_the_limit_of_live_keys():
    client = ApiUserFactory()
    api_key_issue(client=client)
    barrier = threading.Barrier(4)
    outcomes = []

    def issue():
        try:
            barrier.wait(timeout=10)
            api_key_issue(client=client)
            outcomes.append("issued")
        except ApiKeyError:
            outcomes.append("refused")
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=issue) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes) == ["issued", "refused", "refused", "refused"]
    assert ApiKey.objects.filter(client=client, revoked_at__isnull=True).count() == MAX_LIVE_KEYS


def test_a_revoked_key_stays_revoked():
    issued = api_key_issue(client=ApiUserFactory())
    api_key_revoke(api_key=issued.api_key)
    revoked_at = ApiKey.objects.get(pk=issued.api_key.pk).revoked_at

    with pytest.raises(ApiKeyError, match="already revoked"):
        api_key_revoke(api_key=issued.api_key)
    assert ApiKey.objects.get(pk=issued.api_key.pk).revoked_at == revoked_at


def test_a_deactivated_client_gets_no_key():
    client = ApiUserFactory(is_active=False)

    with pytest.raises(ApiKeyError, match="deactivated"):
        api_key_issue(client=client)
    assert not ApiKey.objects.filter(client=client).exists()


STAFF_KINDS = {
    "staff": {"is_staff": True},
    "superuser": {"is_staff": True, "is_superuser": True},
    "superuser_not_staff": {"is_superuser": True},
}


def issue_by_service(user) -> None:
    try:
        api_key_issue(client=user)
    except ApiKeyError as exc:
        raise CommandError(str(exc)) from None


# Every way a key is issued: the service (which the admin's form calls, test
# below), and both commands.
ISSUERS = {
    "service": issue_by_service,
    "issue_api_key": lambda user: run("issue_api_key", user.get_username()),
    "create_api_client": lambda user: run("create_api_client", user.get_username(), "--group", "Treasury client"),
}


@pytest.mark.parametrize("issuer", ISSUERS)
@pytest.mark.parametrize("kind", STAFF_KINDS)
def test_staff_and_superusers_get_no_key_wherever_it_is_issued(migrated_groups, issuer, kind):
    person = ApiUserFactory(**STAFF_KINDS[kind])

    with pytest.raises(CommandError, match=f"{person.get_username()} is (staff|a superuser): people sign in"):
        ISSUERS[issuer](person)

    assert not ApiKey.objects.filter(client=person).exists()
    assert not person.groups.exists()


def test_the_admin_offers_and_issues_no_key_to_staff_or_superusers(key_admin):
    people = [ApiUserFactory(**fields) for fields in STAFF_KINDS.values()]

    page = key_admin.get("/admin/clients/apikey/add/").content.decode()
    refused = [key_admin.post("/admin/clients/apikey/add/", {"client": person.pk}) for person in people]

    assert not any(f'value="{person.pk}"' in page for person in people)
    assert all("Select a valid choice" in response.content.decode() for response in refused)
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize("kind", STAFF_KINDS)
def test_a_key_whose_client_was_made_staff_since_is_refused(migrated_groups, kind):
    api = make_api_client("Treasury client")
    assert can_read(api.api_key) == 200

    type(api.user).objects.filter(pk=api.user.pk).update(**STAFF_KINDS[kind])

    response = api_with(api.api_key).get("/api/wallets?userId=7d0e1c5e-8f6a-4a43-9e4f-0e8d6c1f2a10")
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed" and "staff account" in response.json()["message"]


# --- the commands -------------------------------------------------------------------------


def run(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_issue_list_and_revoke_by_command(migrated_groups):
    api = make_api_client("Transfer client")
    name = api.user.get_username()

    key, said = run("issue_api_key", name, "--name", "rotation 2026-11")
    key = key.strip()
    prefix = ApiKey.objects.get(digest=hashlib.sha256(key.encode()).hexdigest()).prefix
    assert prefix in said and key not in said
    assert can_read(key) == 200

    listed, _ = run("list_api_keys", name)
    assert prefix in listed and api.api_key[:11] in listed and "rotation 2026-11" in listed
    assert key not in listed and api.api_key not in listed

    out, _ = run("revoke_api_key", api.api_key[:11])
    assert f"Revoked {api.api_key[:11]} of {name}" in out
    assert (can_read(api.api_key), can_read(key)) == (401, 200)
    assert api.api_key[:11] not in run("list_api_keys", name)[0]
    assert api.api_key[:11] in run("list_api_keys", name, "--all")[0]


@pytest.mark.parametrize(
    "args, message",
    [
        (("issue_api_key", "nobody"), "No such client: nobody"),
        (("list_api_keys", "nobody"), "No such client: nobody"),
        (("revoke_api_key", "wk_nothere0"), "No API key with prefix 'wk_nothere0'"),
    ],
)
def test_commands_name_what_they_cannot_find(args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)


def test_a_third_key_by_command_is_refused_naming_the_live_ones():
    client = ApiUserFactory()
    first, second = api_key_issue(client=client), api_key_issue(client=client)

    with pytest.raises(CommandError, match=f"{first.api_key.prefix}|{second.api_key.prefix}"):
        run("issue_api_key", client.get_username())


def test_create_api_client_prints_a_working_key_once(migrated_groups):
    key, _ = run("create_api_client", "loan-service", "--group", "Treasury client")

    assert can_read(key.strip()) == 200
    again, said = run("create_api_client", "loan-service", "--group", "Treasury client")
    assert again == "" and "already holds live keys" in said
    assert ApiKey.objects.filter(client__username="loan-service").count() == 1


def test_create_api_client_issues_no_key_to_a_deactivated_client(migrated_groups):
    ApiUserFactory(username="retired-service", is_active=False)

    with pytest.raises(CommandError, match="retired-service is deactivated"):
        run("create_api_client", "retired-service", "--group", "Transfer client")
    assert not ApiKey.objects.filter(client__username="retired-service").exists()


# --- the migration: DRF tokens hashed in place ------------------------------------------------

# rest_framework.authtoken's table, as its migrations left it in databases
# made before the app was removed (INSTALLED_APPS no longer has it).
AUTHTOKEN_TABLE = """
CREATE TABLE authtoken_token (
    key varchar(40) PRIMARY KEY,
    created timestamptz NOT NULL,
    user_id integer NOT NULL UNIQUE REFERENCES auth_user (id) DEFERRABLE INITIALLY DEFERRED
)
"""


def drf_token(client) -> str:
    key = secrets.token_hex(20)  # what DRF's Token.generate_key makes
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO authtoken_token (key, created, user_id) VALUES (%s, now(), %s)", [key, client.pk])
    return key


def test_an_existing_drf_token_keeps_working_after_the_migration_and_its_clear_row_is_gone(migrated_groups):
    with connection.cursor() as cursor:
        cursor.execute(AUTHTOKEN_TABLE)
    client = make_api_client("Transfer client").user
    old_key = drf_token(client)
    other = drf_token(make_api_client("Transfer client").user)
    # Two tokens that begin alike: the second prefix grows, both stay unique.
    alike = drf_token(ApiUserFactory())
    alike_too = alike[:8] + secrets.token_hex(16)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE authtoken_token SET key = %s WHERE key = %s", [alike_too, other])
    assert can_read(old_key) == 401  # before: the service reads API keys only

    with connection.schema_editor() as schema_editor:
        hash_drf_tokens(apps, schema_editor)

    assert can_read(old_key) == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM authtoken_token")
        assert cursor.fetchone() == (0,)
    migrated = ApiKey.objects.get(client=client, name="DRF token, hashed in place")
    assert (migrated.prefix, migrated.digest) == (old_key[:8], hashlib.sha256(old_key.encode()).hexdigest())
    first, second = sorted([alike, alike_too])  # the order the migration takes them in
    digests = [hashlib.sha256(k.encode()).hexdigest() for k in (first, second)]
    assert [ApiKey.objects.get(digest=d).prefix for d in digests] == [first[:8], second[:10]]
    # Rotated like any other key.
    api_key_revoke(api_key=migrated)
    assert can_read(old_key) == 401


def test_the_migration_does_nothing_where_the_token_table_never_was():
    with connection.schema_editor() as schema_editor:
        hash_drf_tokens(apps, schema_editor)

    assert not ApiKey.objects.exists()


# --- the admin ---------------------------------------------------------------------------------


@pytest.fixture
def key_admin(client, django_user_model):
    person = django_user_model.objects.create_user("key-admin", password="pw-keys-1", is_staff=True)
    person.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="clients", codename__endswith="apikey")
    )
    client.force_login(person)
    return client


def test_the_admin_issues_a_key_and_shows_it_once_uncached(key_admin):
    client = ApiUserFactory()

    response = key_admin.post("/admin/clients/apikey/add/", {"client": client.pk, "name": "from the admin"})

    assert response.status_code == 200
    api_key = ApiKey.objects.get(client=client)
    page = response.content.decode()
    key = page.split('id="issued-api-key" value="', 1)[1].split('"', 1)[0]
    assert key.startswith(api_key.prefix + "_") and api_key.digest == hashlib.sha256(key.encode()).hexdigest()
    assert "no-store" in response["Cache-Control"]
    assert can_read(key) == 403  # a client in no group: authenticated, no permission
    # Nowhere after that page: not the list, not the key's own page.
    for page in ("/admin/clients/apikey/", f"/admin/clients/apikey/{api_key.pk}/change/"):
        shown = key_admin.get(page)
        assert shown.status_code == 200 and api_key.prefix in shown.content.decode()
        assert key not in shown.content.decode()


def test_the_admin_refuses_a_third_key_with_the_reason(key_admin):
    client = ApiUserFactory()
    api_key_issue(client=client)
    api_key_issue(client=client)

    response = key_admin.post("/admin/clients/apikey/add/", {"client": client.pk})

    assert response.status_code == 200
    assert "already holds 2 live keys" in response.content.decode()
    assert ApiKey.objects.filter(client=client).count() == 2


def test_the_admin_revokes_selected_keys(key_admin, migrated_groups):
    api = make_api_client("Transfer client")
    api_key = ApiKey.objects.get(client=api.user)

    response = key_admin.post(
        "/admin/clients/apikey/", {"action": "revoke_keys", "_selected_action": [api_key.pk]}, follow=True
    )

    assert response.status_code == 200 and f"Revoked {api_key.prefix}" in response.content.decode()
    assert can_read(api.api_key) == 401


def test_staff_without_the_key_permissions_cannot_issue(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("support", password="pw-keys-2", is_staff=True))

    assert client.post("/admin/clients/apikey/add/", {"client": ApiUserFactory().pk}).status_code == 403
    assert not ApiKey.objects.exists()


def test_an_issued_key_is_what_the_log_redacts(db):
    """settings.LOG_REDACT_PATTERN knows the key's shape without importing
    wallets (the settings load first); this holds the two together."""
    issued = api_key_issue(client=ApiUserFactory())

    match = re.fullmatch(settings.LOG_REDACT_PATTERN, issued.key)

    assert match is not None and match.group(1) == issued.api_key.prefix
