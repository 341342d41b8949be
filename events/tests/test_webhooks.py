"""Webhook delivery against a real receiver on loopback that verifies every
request with the standardwebhooks library: at least once through failures,
retries with the same webhook-id, 410 and persistent failure disable the
endpoint, no redirects, no internal addresses, one sender per delivery."""

import socket
import threading
import time
from collections import Counter
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from clients.api_keys import api_key_issue, api_key_revoke
from clients.models import ApiKey
from conftest import make_api_client
from events import webhooks
from events.models import DeliveryStatus, Event, WebhookDelivery, WebhookEndpoint
from events.outbox import events_purge
from events.tests.receiver import (
    DRIP,
    DRIPPED_ANSWER,
    DROP,
    ERROR,
    GONE,
    REDIRECT,
    TIMEOUT,
    WAIT_SECONDS,
    Receiver,
    fan_out_all,
    pump,
    subscribe,
)
from events.webhook_addresses import UnsafeAddress
from wallets.services import wallet_set_active
from wallets.tests.factories import WalletFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fast(fast_webhooks):
    """Every test here: loopback allowed, short timeouts and retries (conftest.py)."""


def toggle(wallet, times: int) -> None:
    for n in range(times):
        wallet_set_active(wallet=wallet, is_active=n % 2 == 1)


def event_ids(client) -> set[str]:
    return {str(pk) for pk in Event.objects.filter(client=client).values_list("pk", flat=True)}


def test_every_event_arrives_through_failures_and_duplicates_are_retries_with_the_same_id(wallet_owner, receiver):
    api = make_api_client("Treasury client", user=wallet_owner)
    subscribe(api, receiver)
    receiver.script = [ERROR, TIMEOUT, DROP, ERROR, TIMEOUT, DROP, ERROR]
    toggle(WalletFactory(owner=wallet_owner), 6)
    expected = event_ids(wallet_owner)
    assert len(expected) == 6

    pump(lambda: set(receiver.accepted_ids()) == expected)

    assert all(r.verified for r in receiver.requests), "every request carries a valid signature"
    assert {r.webhook_id for r in receiver.requests} == expected, "nothing but the client's events was sent"
    failed = [r for r in receiver.requests if r.behaviour != "ok"]
    assert len(failed) == 7
    # Each event's copies are identical: a duplicate is only ever a retry of the same webhook-id.
    for webhook_id in expected:
        bodies = [r.body for r in receiver.requests if r.webhook_id == webhook_id]
        assert all(body == bodies[0] for body in bodies) and bodies[0]["id"] == webhook_id
    assert Counter(receiver.accepted_ids()).most_common(1)[0][1] == 1
    delivered = WebhookDelivery.objects.filter(status=DeliveryStatus.DELIVERED)
    assert delivered.count() == 6 and sum(d.attempts for d in delivered) == 6 + 7
    assert WebhookEndpoint.objects.get().failing_since is None  # a success clears it


def test_the_body_is_the_event_as_get_api_events_shows_it(wallet_owner, receiver):
    api = make_api_client("Treasury client", user=wallet_owner)
    subscribe(api, receiver)
    wallet = WalletFactory(owner=wallet_owner)
    wallet_set_active(wallet=wallet, is_active=False)
    pump(lambda: len(receiver.accepted_ids()) == 1)
    listed = api.get("/api/events").json()["data"]["events"]
    assert receiver.requests[0].body == listed[0]
    assert listed[0]["type"] == "wallet.frozen" and listed[0]["data"]["id"] == str(wallet.pk)


def test_a_410_disables_the_endpoint_and_the_client_sees_why(wallet_owner, receiver):
    api = make_api_client("Treasury client", user=wallet_owner)
    subscribe(api, receiver)
    receiver.script = [GONE]
    toggle(WalletFactory(owner=wallet_owner), 2)
    pump(lambda: not WebhookEndpoint.objects.get().is_active)
    webhooks.fan_out()
    webhooks.deliver_due(budget_seconds=1)

    assert len(receiver.requests) == 1, "nothing is sent to a disabled endpoint"
    (shown,) = api.get("/api/webhook-endpoints").json()["data"]["results"]
    assert shown["isActive"] is False and "410" in shown["disabledReason"] and shown["disabledAt"]


def test_an_endpoint_failing_for_the_configured_time_is_disabled(wallet_owner, receiver, settings):
    settings.WEBHOOK_DISABLE_AFTER = timedelta(seconds=1)
    api = make_api_client("Treasury client", user=wallet_owner)
    subscribe(api, receiver)
    receiver.script = [ERROR] * 1000
    toggle(WalletFactory(owner=wallet_owner), 1)
    started = time.monotonic()
    pump(lambda: not WebhookEndpoint.objects.get().is_active)

    assert time.monotonic() - started >= 1
    (shown,) = api.get("/api/webhook-endpoints").json()["data"]["results"]
    assert "failed for" in shown["disabledReason"] and "HTTP 500" in shown["disabledReason"]
    assert len(receiver.requests) >= 2 and not receiver.accepted_ids()


def test_a_receiver_that_drips_its_answer_is_cut_at_the_deadline_and_the_attempt_fails(
    wallet_owner, receiver, settings
):
    settings.WEBHOOK_TIMEOUT_SECONDS = 1
    api = make_api_client("Treasury client", user=wallet_owner)
    subscribe(api, receiver)
    # A byte every 0.2 s: no single read waits long, the whole answer takes 11 s.
    receiver.script, receiver.drip_seconds = [DRIP], 0.2
    assert len(DRIPPED_ANSWER) * receiver.drip_seconds > 10
    toggle(WalletFactory(owner=wallet_owner), 1)
    fan_out_all(1)

    started = time.monotonic()
    counts = webhooks.deliver_due(budget_seconds=0.1)
    elapsed = time.monotonic() - started

    assert counts == {"delivered": 0, "failed": 1}
    assert elapsed < 5, "cut at the deadline (1 s), long before the answer ended"
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.PENDING and delivery.lease is None
    assert delivery.last_error == "AttemptDeadlineExceeded: no complete answer within 1 s"
    assert WebhookEndpoint.objects.get().failing_since is not None, "it counts toward disabling the endpoint"
    # The retry carries the same webhook-id, and the first connection was closed by the sender.
    pump(lambda: len(receiver.accepted_ids()) == 1)
    assert [r.webhook_id for r in receiver.requests] == [str(delivery.event_id)] * 2
    pump(lambda: receiver.requests[0].cut)


def test_a_lease_outlasts_the_whole_attempt(settings):
    settings.WEBHOOK_TIMEOUT_SECONDS = 10
    assert webhooks.lease_seconds() > settings.WEBHOOK_TIMEOUT_SECONDS


def test_retries_back_off_exponentially_with_jitter_up_to_the_cap(settings):
    settings.WEBHOOK_RETRY_BASE_SECONDS, settings.WEBHOOK_RETRY_CAP_SECONDS = 5, 3600
    for attempts, ceiling in [(1, 5), (2, 10), (3, 20), (8, 640), (11, 3600), (40, 3600)]:
        delays = {webhooks.retry_delay(attempts).total_seconds() for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays), (attempts, delays)
        assert len(delays) > 1, "jittered"


def test_a_redirect_is_not_followed(wallet_owner, receiver):
    api = make_api_client("Treasury client", user=wallet_owner)
    subscribe(api, receiver)
    receiver.script = [REDIRECT]
    toggle(WalletFactory(owner=wallet_owner), 1)
    pump(lambda: len(receiver.accepted_ids()) == 1)
    assert [r.path for r in receiver.requests] == ["/hooks", "/hooks"], "never /elsewhere"
    assert receiver.requests[0].behaviour == REDIRECT


def test_an_address_allowed_at_registration_is_checked_again_at_each_delivery(wallet_owner, receiver, settings):
    api = make_api_client("Treasury client", user=wallet_owner)
    subscribe(api, receiver)  # loopback allowed (fast_webhooks)
    settings.WEBHOOK_ALLOW_LOOPBACK = False
    toggle(WalletFactory(owner=wallet_owner), 1)
    fan_out_all(1)
    webhooks.deliver_due(budget_seconds=1)

    assert receiver.requests == []
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.PENDING and "WEBHOOK_ALLOW_LOOPBACK" in delivery.last_error


def test_concurrent_workers_never_send_one_delivery_twice(wallet_owner, receiver, settings):
    settings.WEBHOOK_MAX_IN_FLIGHT_PER_CLIENT = 4  # all four workers on this client's deliveries
    # Every attempt succeeds here, however loaded the machine: a timed-out
    # answer would be retried, and a retry is a second send by design.
    settings.WEBHOOK_TIMEOUT_SECONDS = 30
    api = make_api_client("Treasury client", user=wallet_owner)
    subscribe(api, receiver)
    receiver.ok_delay = 0.02
    toggle(WalletFactory(owner=wallet_owner), 30)
    fan_out_all(30)

    undelivered = WebhookDelivery.objects.exclude(status=DeliveryStatus.DELIVERED)
    deadline = time.monotonic() + WAIT_SECONDS

    def worker():
        # Each worker ticks until every delivery is done, as the Celery pool
        # would: one tick's budget is no promise that the 30 fit in it.
        try:
            while undelivered.exists() and time.monotonic() < deadline:
                webhooks.deliver_due(budget_seconds=1)
                time.sleep(0.02)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert Counter(r.webhook_id for r in receiver.requests) == Counter(event_ids(wallet_owner))
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {DeliveryStatus.DELIVERED}


def test_each_client_receives_only_its_own_events_on_its_own_endpoints(funded_wallet):
    first, second = Receiver(), Receiver()
    try:
        mobile, lender = make_api_client("Treasury client"), make_api_client("Disbursement client")
        subscribe(mobile, first)
        subscribe(lender, second)
        toggle(WalletFactory(owner=mobile.user), 3)
        toggle(WalletFactory(owner=lender.user), 2)
        pump(lambda: len(first.accepted_ids()) == 3 and len(second.accepted_ids()) == 2)
        time.sleep(0.2)
        webhooks.fan_out()
        webhooks.deliver_due(budget_seconds=1)

        assert set(first.accepted_ids()) == event_ids(mobile.user)
        assert set(second.accepted_ids()) == event_ids(lender.user)
        assert len(first.requests) == 3 and len(second.requests) == 2
    finally:
        first.stop()
        second.stop()


def test_only_the_subscribed_types_are_sent_and_only_events_after_the_endpoint_was_made(wallet_owner, receiver):
    wallet = WalletFactory(owner=wallet_owner)
    wallet_set_active(wallet=wallet, is_active=False)  # before the endpoint: not sent
    api = make_api_client("Treasury client", user=wallet_owner)
    subscribe(api, receiver, types=["wallet.unfrozen"])
    toggle(wallet, 4)  # already frozen (nothing), unfrozen, frozen, unfrozen
    unfrozen = Event.objects.filter(client=wallet_owner, type="wallet.unfrozen").values_list("pk", flat=True)
    unfrozen = {str(pk) for pk in unfrozen}
    assert len(unfrozen) == 2
    pump(lambda: set(receiver.accepted_ids()) == unfrozen)
    assert all(r.body["type"] == "wallet.unfrozen" for r in receiver.requests)


def test_resend_events_sends_a_clients_events_since_a_time_again_with_the_same_ids(wallet_owner, receiver):
    api = make_api_client("Treasury client", user=wallet_owner)
    subscribe(api, receiver)
    toggle(WalletFactory(owner=wallet_owner), 3)
    pump(lambda: len(receiver.accepted_ids()) == 3)
    since = Event.objects.order_by("created_at")[1].created_at

    out = StringIO()
    call_command("resend_events", wallet_owner.username, "--since", since.isoformat(), stdout=out)
    assert "2 events" in out.getvalue()
    pump(lambda: len(receiver.accepted_ids()) == 5)
    again = Counter(receiver.accepted_ids())
    assert sorted(again.values()) == [1, 2, 2]


@pytest.mark.parametrize("since", ["20261130T050000Z", "2026-W49-1T05:00:00Z", "2026-11-30 05:00:00Z", "2026-11-30"])
def test_resend_events_reads_since_as_the_api_reads_an_instant(wallet_owner, since):
    with pytest.raises(CommandError, match="RFC 3339|offset"):
        call_command("resend_events", wallet_owner.username, "--since", since, stdout=StringIO())


def test_events_past_retention_are_purged_with_their_deliveries(wallet_owner, receiver):
    api = make_api_client("Treasury client", user=wallet_owner)
    subscribe(api, receiver)
    toggle(WalletFactory(owner=wallet_owner), 3)
    fan_out_all(3)
    Event.objects.filter(pk__in=list(Event.objects.order_by("seq").values_list("pk", flat=True)[:2])).update(
        created_at=timezone.now() - timedelta(days=31)
    )
    assert events_purge(retention=timedelta(days=30)) == 2
    assert Event.objects.count() == 1 and WebhookDelivery.objects.count() == 1


def test_an_endpoint_deleted_while_its_delivery_is_claimed_is_not_an_error(wallet_owner, receiver):
    api = make_api_client("Treasury client", user=wallet_owner)
    endpoint = subscribe(api, receiver)
    toggle(WalletFactory(owner=wallet_owner), 1)
    fan_out_all(1)
    claimed = webhooks._claim_one()
    assert api.delete(f"/api/webhook-endpoints/{endpoint['id']}").status_code == 200

    outcome = webhooks._attempt(claimed[0], deadline=time.monotonic() + 5)
    webhooks._record(*claimed, outcome)

    assert not outcome.delivered and receiver.requests == []
    assert not WebhookDelivery.objects.exists()


def test_a_client_holds_at_most_its_share_of_the_pool_and_the_others_are_claimed_meanwhile(funded_wallet, settings):
    settings.WEBHOOK_MAX_IN_FLIGHT_PER_CLIENT = 1
    slow, honest = Receiver(), Receiver()
    try:
        dripping, other = make_api_client("Treasury client"), make_api_client("Treasury client")
        subscribe(dripping, slow)
        subscribe(dripping, slow)  # two endpoints: as many as the pool below has slots
        subscribe(other, honest)
        toggle(WalletFactory(owner=dripping.user), 2)  # 2 events x 2 endpoints, due first
        fan_out_all(4)
        toggle(WalletFactory(owner=other.user), 1)
        fan_out_all(5)

        first = webhooks._claim_one()  # the dripping client's oldest: its share
        second = webhooks._claim_one()  # not its second: the other client's
        third = webhooks._claim_one()  # nothing: the dripping client is at its share

        owners = dict(WebhookDelivery.objects.values_list("pk", "endpoint__client_id"))
        assert owners[first[0]] == dripping.user.pk
        assert owners[second[0]] == other.user.pk
        assert third is None
        # Its attempt over, the dripping client may take its next one.
        webhooks._record(*first, webhooks.Outcome(None, "cut"))
        assert owners[webhooks._claim_one()[0]] == dripping.user.pk
    finally:
        slow.stop()
        honest.stop()


@pytest.mark.parametrize("cut_off", ["deactivated", "every key revoked"])
def test_a_client_that_may_not_call_the_api_receives_nothing_until_it_may_again(cut_off, wallet_owner, receiver):
    api = make_api_client("Treasury client", user=wallet_owner)
    subscribe(api, receiver)
    wallet = WalletFactory(owner=wallet_owner)
    toggle(wallet, 1)
    pump(lambda: len(receiver.accepted_ids()) == 1)
    if cut_off == "deactivated":
        type(wallet_owner).objects.filter(pk=wallet_owner.pk).update(is_active=False)
    else:
        for key in ApiKey.objects.filter(client=wallet_owner):
            api_key_revoke(api_key=key)
    wallet_set_active(wallet=wallet, is_active=True)

    # Its event is recorded (GET /api/events would show it) but nothing is sent.
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        webhooks.fan_out()
        webhooks.deliver_due(budget_seconds=0.1)
        time.sleep(0.05)
    assert len(receiver.requests) == 1 and Event.objects.filter(client=wallet_owner).count() == 2

    if cut_off == "deactivated":
        type(wallet_owner).objects.filter(pk=wallet_owner.pk).update(is_active=True)
    else:
        api_key_issue(client=wallet_owner)
    pump(lambda: set(receiver.accepted_ids()) == event_ids(wallet_owner))


def test_a_disabled_reason_says_the_address_is_not_allowed_without_showing_it(
    wallet_owner, receiver, settings, monkeypatch
):
    settings.WEBHOOK_DISABLE_AFTER = timedelta(seconds=0)
    api = make_api_client("Treasury client", user=wallet_owner)
    subscribe(api, receiver)
    # The client's host name now resolves to an internal address (a seam: no DNS server here).
    internal = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.20.30.40", 80))]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: internal)
    toggle(WalletFactory(owner=wallet_owner), 1)
    pump(lambda: not WebhookEndpoint.objects.get().is_active)

    (shown,) = api.get("/api/webhook-endpoints").json()["data"]["results"]
    assert "127.0.0.1 resolves to an address deliveries may not reach" in shown["disabledReason"]
    assert "10.20.30.40" not in str(shown) and "10.20.30.40" not in WebhookDelivery.objects.get().last_error
    assert receiver.requests == []


def test_the_client_reads_its_endpoints_last_delivery_error_through_the_api(wallet_owner, receiver, settings):
    api = make_api_client("Treasury client", user=wallet_owner)
    subscribe(api, receiver)
    (before,) = api.get("/api/webhook-endpoints").json()["data"]["results"]
    assert (before["lastAttemptAt"], before["lastStatusCode"], before["lastError"]) == (None, None, "")

    receiver.script = [ERROR] * 1000
    toggle(WalletFactory(owner=wallet_owner), 1)
    pump(lambda: WebhookEndpoint.objects.get().last_error)
    (failed,) = api.get("/api/webhook-endpoints").json()["data"]["results"]
    assert failed["lastStatusCode"] == 500 and failed["lastError"] == "HTTP 500" and failed["lastAttemptAt"]

    receiver.script.clear()
    pump(lambda: receiver.accepted_ids())
    (delivered,) = api.get("/api/webhook-endpoints").json()["data"]["results"]
    assert delivered["lastStatusCode"] == 200 and delivered["lastError"] == ""


@pytest.mark.parametrize(
    ("path", "error"),
    [("/caf\u00e9", "cannot be sent on a request line"), ("/a\x01b", "InvalidURL")],
    ids=["non_ascii", "control_character"],
)
def test_a_stored_url_that_cannot_be_sent_fails_its_attempt_and_the_tick_goes_on(path, error, funded_wallet):
    # Registration refuses such a URL now; a non-ASCII one stored before that
    # raised out of deliver_due (UnicodeEncodeError): the tick ended there, the
    # attempt was never recorded, and its lease came back every lease forever.
    broken_receiver, honest_receiver = Receiver(), Receiver()
    try:
        broken, other = make_api_client("Treasury client"), make_api_client("Treasury client")
        subscribe(broken, broken_receiver)
        WebhookEndpoint.objects.filter(client=broken.user).update(url=broken_receiver.url + path)
        subscribe(other, honest_receiver)
        toggle(WalletFactory(owner=broken.user), 1)  # due first
        fan_out_all(1)
        toggle(WalletFactory(owner=other.user), 1)
        fan_out_all(2)

        counts = webhooks.deliver_due(budget_seconds=5)

        # Retried within the budget (fast_webhooks' short backoff), each time a failure.
        assert counts["delivered"] == 1 and counts["failed"] >= 1
        assert len(honest_receiver.accepted_ids()) == 1 and broken_receiver.requests == []
        failed = WebhookDelivery.objects.get(endpoint__client=broken.user)
        assert failed.status == DeliveryStatus.PENDING and failed.lease is None
        assert failed.attempts == counts["failed"]
        shown = broken.get("/api/webhook-endpoints").json()["data"]["results"][0]
        assert shown["lastStatusCode"] is None and error in shown["lastError"]
    finally:
        broken_receiver.stop()
        honest_receiver.stop()


def test_a_host_name_that_never_resolves_is_cut_at_the_attempts_deadline(monkeypatch):
    # The lookup came before the deadline's timer: a name whose DNS server
    # never answers held a delivery worker for the resolver's whole timeout.
    release = threading.Event()

    def getaddrinfo(host, port, *args, flags=0, **kwargs):
        if flags & socket.AI_NUMERICHOST:  # a name, not an address
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        release.wait(10)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    started = time.monotonic()
    try:
        with pytest.raises(UnsafeAddress, match="no answer within"):
            webhooks.post("https://hooks.slow.example.com/h", b"{}", {}, deadline=started + 0.5)
        assert time.monotonic() - started < 1.5
    finally:
        release.set()
        for thread in threading.enumerate():
            if thread.name == "webhook-address-lookup":
                thread.join(5)
