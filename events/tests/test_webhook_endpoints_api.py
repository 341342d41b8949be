"""GET, POST /api/webhook-endpoints at scale: a client has at most
WEBHOOK_MAX_ENDPOINTS_PER_CLIENT endpoints, even when it asks for more at
once, and the list is paginated like the others."""

import threading

import pytest
from django.db import connection

from conftest import make_api_client
from events.models import WebhookEndpoint
from wallet_project.tests import assert_error_envelope

pytestmark = pytest.mark.django_db(transaction=True)


def create(api, n: int = 0):
    body = {"url": f"https://hooks.example.com/{n}", "eventTypes": ["wallet.frozen"]}
    return api.post("/api/webhook-endpoints", body, format="json")


def test_a_client_has_at_most_the_configured_number_of_endpoints(treasury_api, settings):
    settings.WEBHOOK_MAX_ENDPOINTS_PER_CLIENT = 3
    assert [create(treasury_api, n).status_code for n in range(3)] == [201] * 3

    refused = assert_error_envelope(create(treasury_api, 3), status=409, code="webhook_endpoints_limit")
    assert "as many webhook endpoints as a client may" in refused["message"]
    assert WebhookEndpoint.objects.count() == 3
    # Another client is not counted against it, and a deleted endpoint frees a place.
    assert create(make_api_client("Treasury client")).status_code == 201
    first = WebhookEndpoint.objects.filter(client=treasury_api.user).first()
    assert treasury_api.delete(f"/api/webhook-endpoints/{first.pk}").status_code == 200
    assert create(treasury_api, 4).status_code == 201


def test_concurrent_creations_never_pass_the_limit(treasury_api, settings):
    settings.WEBHOOK_MAX_ENDPOINTS_PER_CLIENT = 3
    statuses = []
    start = threading.Barrier(8)

    def one(n):
        try:
            start.wait()
            statuses.append(create(treasury_api, n).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=one, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [201] * 3 + [409] * 5
    assert WebhookEndpoint.objects.filter(client=treasury_api.user).count() == 3


def test_the_list_is_paginated_newest_first_like_the_others(treasury_api, settings):
    settings.WEBHOOK_MAX_ENDPOINTS_PER_CLIENT = 5
    made = [create(treasury_api, n).json()["data"]["id"] for n in range(5)]
    create(make_api_client("Treasury client"))  # another client's: never listed

    first = treasury_api.get("/api/webhook-endpoints?limit=2").json()["data"]
    assert [e["id"] for e in first["results"]] == made[:-3:-1] and first["previous"] is None
    seen = [e["id"] for e in first["results"]]
    page = first
    while page["next"]:
        page = treasury_api.get(page["next"]).json()["data"]
        seen += [e["id"] for e in page["results"]]
    assert seen == made[::-1]
    for bad in ("limit=0", "limit=abc", "cursor=nope"):
        name = bad.split("=")[0]
        assert_error_envelope(
            treasury_api.get(f"/api/webhook-endpoints?{bad}"), status=400, code="validation_error", field=name
        )


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/caf\u00e9", id="non_ascii"),
        pytest.param("/a\x01b", id="control_character"),
        pytest.param("/a\x7fb", id="delete"),
        pytest.param("/?q=a\u2028b", id="line_separator_in_the_query"),
    ],
)
def test_a_url_that_cannot_be_sent_on_a_request_line_is_a_400_that_stores_nothing(path, treasury_api, settings):
    # Such a URL was stored with a 201, and every delivery to it then raised
    # out of the delivery task instead of failing the attempt.
    settings.WEBHOOK_ALLOW_LOOPBACK = True
    body = {"url": f"http://127.0.0.1:8299{path}", "eventTypes": ["wallet.frozen"]}

    response = treasury_api.post("/api/webhook-endpoints", body, format="json")

    refused = assert_error_envelope(response, status=400, code="validation_error", field="url")
    assert "percent-encode" in refused["errors"]["url"][0]
    assert not WebhookEndpoint.objects.exists()


def test_a_percent_encoded_url_is_accepted_as_written(treasury_api, settings):
    settings.WEBHOOK_ALLOW_LOOPBACK = True
    body = {"url": "http://127.0.0.1:8299/caf%C3%A9?q=%E2%80%A8", "eventTypes": ["wallet.frozen"]}

    response = treasury_api.post("/api/webhook-endpoints", body, format="json")

    assert response.status_code == 201
    assert WebhookEndpoint.objects.get().url == "http://127.0.0.1:8299/caf%C3%A9?q=%E2%80%A8"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        pytest.param("https://hooks.example.com/" + "a" * 5000, "no more than 2000 characters", id="too_long"),
        pytest.param("https://user:secret@hooks.example.com/in", "user name or password", id="credentials"),
        pytest.param("https://hooks.example.com/in#events", "fragment", id="fragment"),
    ],
)
def test_a_url_refused_for_one_reason_is_told_that_reason_once(url, says, treasury_api):
    # A 5,000-character URL was told twice (the length and "Enter a valid URL."),
    # user:pass@ got the generic "Enter a valid URL.", and a fragment, which is
    # never sent to the receiver, was stored as if it were.
    response = treasury_api.post("/api/webhook-endpoints", {"url": url, "eventTypes": ["wallet.frozen"]}, format="json")

    refused = assert_error_envelope(response, status=400, code="validation_error", field="url")
    assert len(refused["errors"]["url"]) == 1
    assert says in refused["errors"]["url"][0]
    assert not WebhookEndpoint.objects.exists()
