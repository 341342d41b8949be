"""Webhooks for support staff (the admin) and for on-call (/metrics)."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from conftest import make_api_client
from events import webhooks
from events.models import DeliveryStatus, Event, WebhookDelivery, WebhookEndpoint
from events.tests.receiver import ERROR, fan_out_all, subscribe
from wallet_project.tests.test_metrics_endpoint import TOKEN, parse, value
from wallets.services import wallet_set_active
from wallets.tests.factories import WalletFactory
from wallets.tests.test_admin import staff_client

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("migrated_groups")]


@pytest.fixture(autouse=True)
def _fast(fast_webhooks):
    """Loopback allowed, short timeouts and retries (conftest.py)."""


def delivered_event(wallet_owner, receiver, types=("wallet.frozen",)) -> Event:
    """A freeze event, sent once to a new endpoint of its owner (as the receiver answers)."""
    api = make_api_client("Treasury client", user=wallet_owner)
    subscribe(api, receiver, types=list(types))
    wallet_set_active(wallet=WalletFactory(owner=wallet_owner), is_active=False)
    fan_out_all(1)
    webhooks.deliver_due(budget_seconds=1)
    return Event.objects.get()


def failing_endpoint(wallet_owner, receiver, settings) -> WebhookEndpoint:
    """An endpoint with one delivery that failed with a 500, its retry an hour away."""
    settings.WEBHOOK_RETRY_BASE_SECONDS = settings.WEBHOOK_RETRY_CAP_SECONDS = 3600
    receiver.script = [ERROR]
    delivered_event(wallet_owner, receiver)
    return WebhookEndpoint.objects.get()


def test_support_sees_an_endpoints_recent_deliveries_with_attempts_status_code_and_error(
    wallet_owner, receiver, settings
):
    endpoint = failing_endpoint(wallet_owner, receiver, settings)
    support = staff_client("Support")

    page = support.get(reverse("admin:events_webhookendpoint_change", args=[endpoint.pk]))

    assert page.status_code == 200
    html = page.content.decode()
    delivery = WebhookDelivery.objects.get()
    for shown in (str(delivery.event_id), "wallet.frozen", "PENDING", "HTTP 500", ">500<", ">1<"):
        assert shown in html, shown
    assert "whsec_" not in html and endpoint.secret_encrypted not in html


def test_support_sends_a_delivered_event_again_and_it_arrives_again(wallet_owner, receiver):
    event = delivered_event(wallet_owner, receiver)
    assert receiver.accepted_ids() == [str(event.pk)]

    support = staff_client("Support")
    response = support.post(
        reverse("admin:events_event_changelist"), {"action": "send_again", "_selected_action": [event.pk]}
    )
    assert response.status_code == 302
    assert WebhookDelivery.objects.get().status == DeliveryStatus.PENDING
    webhooks.deliver_due(budget_seconds=1)
    assert receiver.accepted_ids() == [str(event.pk)] * 2


def test_staff_outside_support_cannot_send_again(wallet_owner, receiver):
    event = delivered_event(wallet_owner, receiver)

    stranger = staff_client()
    stranger.post(reverse("admin:events_event_changelist"), {"action": "send_again", "_selected_action": [event.pk]})

    assert WebhookDelivery.objects.get().status == DeliveryStatus.DELIVERED
    assert stranger.get(reverse("admin:events_webhookendpoint_changelist")).status_code == 403


def test_metrics_show_deliveries_by_outcome_the_oldest_undelivered_and_disabled_endpoints(
    wallet_owner, receiver, settings
):
    settings.METRICS_TOKEN = TOKEN
    endpoint = failing_endpoint(wallet_owner, receiver, settings)
    Event.objects.update(created_at=timezone.now() - timedelta(minutes=20))

    def scrape():
        response = Client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 200
        return parse(response.content.decode())

    samples = scrape()
    assert value(samples, "wallet_webhook_deliveries", outcome="retrying") == 1
    assert value(samples, "wallet_webhook_deliveries", outcome="delivered") == 0
    assert 1200 <= value(samples, "wallet_webhook_oldest_undelivered_age_seconds") < 1300
    assert value(samples, "wallet_webhook_undelivered_alert_seconds") == settings.WEBHOOK_UNDELIVERED_ALERT_SECONDS
    assert value(samples, "wallet_webhook_endpoints_disabled") == 0

    WebhookDelivery.objects.update(next_attempt_at=timezone.now())  # the hour has passed
    webhooks.deliver_due(budget_seconds=1)  # the receiver answers 200 now
    samples = scrape()
    assert value(samples, "wallet_webhook_deliveries", outcome="delivered") == 1
    assert value(samples, "wallet_webhook_oldest_undelivered_age_seconds") == 0

    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(is_active=False)
    assert value(scrape(), "wallet_webhook_endpoints_disabled") == 1
