"""The outbox tables defend themselves: each rule of their Meta.constraints
is enforced by PostgreSQL, whatever code path writes."""

import pytest

from events.models import Event, WebhookDelivery, WebhookEndpoint
from wallets.tests.factories import OwnerFactory
from wallets.tests.test_constraints import violates

pytestmark = pytest.mark.django_db


def endpoint(client) -> WebhookEndpoint:
    return WebhookEndpoint.objects.create(
        client=client, url="https://hooks.example.com/", event_types=["wallet.frozen"], secret_encrypted="x",
        cursor_txid=0,
    )  # fmt: skip


def test_an_event_of_an_unknown_type_is_refused():
    event = Event.objects.create(client=OwnerFactory(), type="wallet.frozen", data={})
    with violates("wallets_event_type_known"):
        Event.objects.filter(pk=event.pk).update(type="wallet.exploded")


def test_an_event_gets_its_writing_transactions_id_and_a_sequence_from_the_database():
    client = OwnerFactory()
    first = Event.objects.create(client=client, type="wallet.frozen", data={})
    second = Event.objects.create(client=client, type="wallet.unfrozen", data={})
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.txid == second.txid > 0  # one test transaction wrote both
    assert second.seq > first.seq


def test_an_endpoint_url_that_is_not_http_is_refused():
    hook = endpoint(OwnerFactory())
    with violates("wallets_webhookendpoint_url_http"):
        WebhookEndpoint.objects.filter(pk=hook.pk).update(url="gopher://hooks.example.com/")


def test_one_delivery_per_event_and_endpoint():
    client = OwnerFactory()
    hook = endpoint(client)
    event = Event.objects.create(client=client, type="wallet.frozen", data={})
    WebhookDelivery.objects.create(endpoint=hook, event=event)
    with violates("wallets_webhookdelivery_once_per_endpoint"):
        WebhookDelivery.objects.create(endpoint=hook, event=event)
