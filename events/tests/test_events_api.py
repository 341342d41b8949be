"""GET /api/events and the webhook endpoints API: each client sees only its
own, in commit order, and a late commit is never skipped by a cursor."""

import base64
import string
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import pytest
from django.db import connection, transaction

from conftest import make_api_client
from events.models import Event, WebhookEndpoint
from events.outbox import EventCursor
from transfers import services
from wallet_project.tests import assert_error_envelope
from wallets.services import wallet_set_active
from wallets.tests.factories import WalletFactory

# Events are listed once their transaction is older than every running one:
# a test transaction would hide its own, so these tests commit.
pytestmark = pytest.mark.django_db(transaction=True)

LISTED_WITHIN_SECONDS = 300


def listed(api, count: int = 0, **params) -> dict:
    """A page of GET /api/events, polled until it holds at least `count`
    events: an event is listed once every transaction older than it has
    ended, and this PostgreSQL server is shared with other test runs whose
    test transactions stay open for a whole test (the horizon is server-wide):
    under load that is minutes, not seconds, hence the deadline."""
    deadline = time.monotonic() + LISTED_WITHIN_SECONDS
    while True:
        response = api.get("/api/events", {k: v for k, v in params.items() if v is not None})
        assert response.status_code == 200, response.json()
        data = response.json()["data"]
        if len(data["events"]) >= count:
            return data
        assert time.monotonic() < deadline, f"{len(data['events'])} of {count} events listed after the deadline"
        time.sleep(0.05)


def freeze(wallet) -> None:
    wallet_set_active(wallet=wallet, is_active=False)


@contextmanager
def freeze_left_open(wallet) -> Iterator[None]:
    """Freeze `wallet` in a transaction on another connection, and keep it
    open (its event written, not committed) for the whole `with` block: it
    commits when the block ends, never earlier on a timer."""
    written, release = threading.Event(), threading.Event()

    def slow_freeze():
        try:
            with transaction.atomic():
                freeze(wallet)
                written.set()
                release.wait()
        finally:
            connection.close()

    worker = threading.Thread(target=slow_freeze)
    worker.start()
    try:
        assert written.wait(LISTED_WITHIN_SECONDS), "the freeze left open was not written"
        yield
    finally:
        release.set()
        worker.join()


def test_each_client_lists_only_its_own_events_oldest_first(funded_wallet):
    mobile, lender = make_api_client("Treasury client"), make_api_client("Disbursement client")
    mobile_wallet = funded_wallet("10.00", owner=mobile.user)
    lender_wallet = funded_wallet("100.00", owner=lender.user)
    services.transfer_create(
        client=lender.user, source_wallet_id=lender_wallet.pk, destination_wallet_id=mobile_wallet.pk,
        amount=Decimal("5"), idempotency_key="loan", metadata={"secret": "lender's"},
    )  # fmt: skip
    freeze(lender_wallet)

    mobile_events = listed(mobile, 2)["events"]
    lender_events = listed(lender, 3)["events"]
    assert [e["type"] for e in mobile_events] == ["deposit.completed", "transfer.completed"]
    assert [e["type"] for e in lender_events] == ["deposit.completed", "transfer.completed", "wallet.frozen"]
    # Two copies of one transfer, each the client's own, the payee's without the payer's key and metadata.
    assert mobile_events[1]["id"] != lender_events[1]["id"]
    assert mobile_events[1]["data"]["metadata"] is None and mobile_events[1]["data"]["idempotencyKey"] is None
    assert lender_events[1]["data"]["metadata"] == {"secret": "lender's"}
    assert {e["data"]["id"] for e in mobile_events}.isdisjoint({str(lender_wallet.pk)})


def test_the_cursor_pages_through_and_the_type_filter_narrows(wallet_owner):
    api = make_api_client("Treasury client", user=wallet_owner)
    wallets = [WalletFactory(owner=wallet_owner) for _ in range(5)]
    for wallet in wallets:
        freeze(wallet)
    wallet_set_active(wallet=wallets[0], is_active=True)

    first = listed(api, 2, limit=2)
    second = listed(api, 2, limit=2, after=first["nextCursor"])
    rest = listed(api, 2, after=second["nextCursor"])
    pages = first["events"] + second["events"] + rest["events"]
    assert [e["data"]["id"] for e in pages[:5]] == [str(w.pk) for w in wallets]
    assert [e["type"] for e in pages] == ["wallet.frozen"] * 5 + ["wallet.unfrozen"]
    # Nothing new: the same cursor comes back, to poll with.
    assert listed(api, after=rest["nextCursor"]) == {"events": [], "nextCursor": rest["nextCursor"]}
    assert [e["type"] for e in listed(api, 1, type="wallet.unfrozen")["events"]] == ["wallet.unfrozen"]


@pytest.mark.parametrize(
    "params, named",
    [
        ({"after": "abc"}, "after"),
        ({"after": "1-99999999999999999999"}, "after"),
        ({"type": "transfer.exploded"}, "type"),
        ({"limit": "0"}, "limit"),
        ({"limit": "abc"}, "limit"),
        # A page of 5 written otherwise (DRF's IntegerField read each as 5).
        ({"limit": "\u0665"}, "limit"),  # an Arabic-Indic digit
        ({"limit": "\uff15"}, "limit"),  # a fullwidth digit
        ({"limit": "5.0"}, "limit"),
        ({"limit": " 5"}, "limit"),
        ({"limit": "+5"}, "limit"),
        ({"limit": "0_5"}, "limit"),
    ],
)
def test_a_malformed_query_is_a_400_naming_the_parameter(treasury_api, params, named):
    assert_error_envelope(treasury_api.get("/api/events", params), status=400, code="validation_error", field=named)


def test_the_cursor_reveals_no_position_and_opens_for_its_own_client_only(wallet_owner):
    api, other = make_api_client("Treasury client", user=wallet_owner), make_api_client("Treasury client")
    freeze(WalletFactory(owner=wallet_owner))
    freeze(WalletFactory(owner=other.user))
    cursor = listed(api, 1)["nextCursor"]
    event = Event.objects.get(client=wallet_owner)

    # 43 characters, whatever the position: no txid or seq to read in it.
    assert len(cursor) == 43 and set(cursor) <= set(string.ascii_letters + string.digits + "-_")
    # The position is not in it in clear, in any encoding.
    decoded = base64.urlsafe_b64decode(cursor + "=")
    assert struct.pack(">qq", event.txid, event.seq) not in decoded and f"{event.txid}".encode() not in decoded
    assert EventCursor.unseal(cursor, client_id=wallet_owner.pk) == EventCursor.of(event)
    # Another client's cursor is not one the API wrote for it.
    assert_error_envelope(
        other.get("/api/events", {"after": cursor}), status=400, code="validation_error", field="after"
    )


def altered(cursor: str) -> list[str]:
    """The cursor with each of its characters changed in turn."""
    return [cursor[:i] + ("A" if c != "A" else "B") + cursor[i + 1 :] for i, c in enumerate(cursor)]


def same_bytes_written_otherwise(cursor: str) -> list[str]:
    """Other texts whose unpadded base64 decodes to the cursor's bytes."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    sealed = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    others = [cursor[:-1] + c for c in alphabet if c != cursor[-1]]
    return [text for text in others if base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)) == sealed]


def test_a_cursor_the_api_never_wrote_is_a_400_naming_after(wallet_owner):
    api = make_api_client("Treasury client", user=wallet_owner)
    freeze(WalletFactory(owner=wallet_owner))
    cursor = listed(api, 1)["nextCursor"]
    event = Event.objects.get(client=wallet_owner)
    never_written = [
        f"{event.txid}-{event.seq}",  # the old, readable form
        "A" * 43,
        cursor[:-1],
        cursor + "A",
        *altered(cursor)[::7],
        # The last character's low bits are dropped by a lenient decoder: a
        # text that decodes to the same bytes is still not what the API wrote.
        *same_bytes_written_otherwise(cursor),
    ]

    for text in never_written:
        response = api.get("/api/events", {"after": text})
        assert_error_envelope(response, status=400, code="validation_error", field="after")
        assert "Not a cursor this API wrote" in response.json()["errors"]["after"][0], text


def test_a_cursor_beyond_the_events_that_exist_is_a_400_not_a_silent_page(wallet_owner):
    """What a corrupted cursor, or one written before a database restore,
    holds: a real position with its transaction id raised by 10^12."""
    api = make_api_client("Treasury client", user=wallet_owner)
    freeze(WalletFactory(owner=wallet_owner))
    listed(api, 1)
    event = Event.objects.get(client=wallet_owner)
    beyond = EventCursor(event.txid + 10**12, event.seq).seal(client_id=wallet_owner.pk)

    response = api.get("/api/events", {"after": beyond})

    assert_error_envelope(response, status=400, code="validation_error", field="after")
    assert "Beyond the events that exist" in response.json()["errors"]["after"][0]


def test_an_event_that_commits_late_is_listed_after_the_cursor_not_skipped(wallet_owner):
    """The event of a transaction that began first but commits last sorts
    after everything already listed: a client polling with its cursor gets it."""
    api = make_api_client("Treasury client", user=wallet_owner)
    early, late = WalletFactory(owner=wallet_owner), WalletFactory(owner=wallet_owner)
    with freeze_left_open(early):
        freeze(late)  # commits while the first freeze is still open
        # The committed event waits behind the open transaction...
        while_open = listed(api)
        assert while_open["events"] == []
    # ...and then both come, in an order no later listing contradicts.
    after_commit = listed(api, 2)
    assert {e["data"]["id"] for e in after_commit["events"]} == {str(early.pk), str(late.pk)}
    assert listed(api, after=after_commit["nextCursor"])["events"] == []


def test_a_cursor_read_before_a_late_commit_still_yields_it(wallet_owner):
    api = make_api_client("Treasury client", user=wallet_owner)
    first, early, late = (WalletFactory(owner=wallet_owner) for _ in range(3))
    freeze(first)
    cursor = listed(api, 1)["nextCursor"]
    with freeze_left_open(early):
        freeze(late)
        page = listed(api, after=cursor)  # the late commit is not there yet: nothing is listed past it
        assert page["events"] == []
    page = listed(api, 2, after=page["nextCursor"])
    assert {e["data"]["id"] for e in page["events"]} == {str(early.pk), str(late.pk)}


# --- webhook endpoints ------------------------------------------------------------------


def test_an_endpoint_shows_its_secret_once_and_lists_without_it(treasury_api):
    created = treasury_api.post(
        "/api/webhook-endpoints",
        {"url": "https://hooks.example.com/wallet", "eventTypes": ["transfer.completed", "wallet.frozen"]},
        format="json",
    )
    assert created.status_code == 201, created.json()
    data = created.json()["data"]
    assert data["secret"].startswith("whsec_") and data["isActive"] is True
    stored = WebhookEndpoint.objects.get(pk=data["id"])
    assert data["secret"] not in stored.secret_encrypted  # encrypted at rest
    listing = treasury_api.get("/api/webhook-endpoints").json()["data"]["results"]
    assert [e["id"] for e in listing] == [data["id"]]
    assert "secret" not in listing[0] and data["secret"] not in str(listing)


@pytest.mark.parametrize("scheme", ["HTTP", "Https", "hTtPs"])
def test_a_scheme_in_any_case_is_stored_in_lower_case(scheme, treasury_api):
    # Schemes are case-insensitive (RFC 3986); this was a 500 from the CHECK on the scheme.
    created = treasury_api.post(
        "/api/webhook-endpoints",
        {"url": f"{scheme}://hooks.example.com/wallet", "eventTypes": ["wallet.frozen"]},
        format="json",
    )

    assert created.status_code == 201, created.json()
    assert created.json()["data"]["url"] == f"{scheme.lower()}://hooks.example.com/wallet"


@pytest.mark.parametrize(
    "body, named",
    [
        ({"url": "ftp://hooks.example.com/", "eventTypes": ["wallet.frozen"]}, "url"),
        ({"url": "file:///etc/passwd", "eventTypes": ["wallet.frozen"]}, "url"),
        ({"url": "https://user:pw@hooks.example.com/", "eventTypes": ["wallet.frozen"]}, "url"),
        ({"url": "https://hooks.example.com:99999/", "eventTypes": ["wallet.frozen"]}, "url"),
        ({"url": "https://hooks.example.com:0/", "eventTypes": ["wallet.frozen"]}, "url"),
        ({"url": "https://hooks.example.com/", "eventTypes": ["wallet.exploded"]}, "eventTypes"),
        ({"url": "https://hooks.example.com/", "eventTypes": []}, "eventTypes"),
        ({"url": "https://hooks.example.com/"}, "eventTypes"),
    ],
)
def test_a_bad_endpoint_is_a_400_and_stores_nothing(treasury_api, body, named):
    response = treasury_api.post("/api/webhook-endpoints", body, format="json")
    assert_error_envelope(response, status=400, code="validation_error", field=named)
    assert not WebhookEndpoint.objects.exists()


def test_a_client_cannot_see_or_delete_another_clients_endpoint(treasury_api):
    other = make_api_client("Treasury client")
    theirs = other.post(
        "/api/webhook-endpoints", {"url": "https://other.example.com/", "eventTypes": ["wallet.frozen"]}, format="json"
    ).json()["data"]
    assert treasury_api.get("/api/webhook-endpoints").json()["data"]["results"] == []
    response = treasury_api.delete(f"/api/webhook-endpoints/{theirs['id']}")
    assert_error_envelope(response, status=404, code="webhook_endpoint_not_found")
    assert_error_envelope(
        treasury_api.delete(f"/api/webhook-endpoints/{uuid.uuid4()}"), status=404, code="webhook_endpoint_not_found"
    )
    assert WebhookEndpoint.objects.filter(pk=theirs["id"]).exists()

    deleted = other.delete(f"/api/webhook-endpoints/{theirs['id']}")
    assert deleted.status_code == 200 and deleted.json()["data"]["id"] == theirs["id"]
    assert not WebhookEndpoint.objects.exists()


def test_events_need_an_api_key(client):
    assert_error_envelope(client.get("/api/events"), status=401, code="not_authenticated")
    assert_error_envelope(client.get("/api/webhook-endpoints"), status=401, code="not_authenticated")
    assert not Event.objects.exists()
