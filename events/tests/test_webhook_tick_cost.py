"""The delivery tick that runs every WEBHOOK_DELIVER_EVERY_SECONDS with no
event to send costs the same few statements whether there is one endpoint or
a thousand (issue 25: 1,100 endpoints made each idle tick take 4.6-6.5 s)."""

import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from events import tasks
from events.models import WebhookEndpoint
from transfers.tests.factories import ApiUserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def add_endpoints(count: int) -> None:
    """`count` endpoints, 10 per client (the default limit), caught up with every event."""
    clients = [ApiUserFactory() for _ in range(-(-count // 10))]
    WebhookEndpoint.objects.bulk_create(
        WebhookEndpoint(
            client=clients[n // 10],
            url=f"https://hooks.example.com/{n}",
            event_types=["wallet.frozen"],
            secret_encrypted="-",
            cursor_txid=0,
        )
        for n in range(count)
    )


def idle_tick() -> tuple[int, float]:
    """(statements, seconds) of one run of the delivery task with nothing to send."""
    tasks.deliver_webhooks()  # warm
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        assert tasks.deliver_webhooks() == {"fanned_out": 0, "delivered": 0, "failed": 0}
        seconds = time.perf_counter() - started
    return len(queries), seconds


def test_an_idle_tick_costs_the_same_statements_with_one_endpoint_or_a_thousand():
    add_endpoints(1)
    one = idle_tick()
    add_endpoints(999)
    thousand = idle_tick()
    print(
        f"\nidle tick: 1 endpoint {one[0]} statements {one[1] * 1000:.1f} ms; "
        f"1000 endpoints {thousand[0]} statements {thousand[1] * 1000:.1f} ms"
    )
    assert thousand[0] == one[0]
    assert thousand[1] < 0.5, "a small fraction of the 2 s between ticks"
