"""The start terminal stays readable: the delivery tick, every
WEBHOOK_DELIVER_EVERY_SECONDS, logs nothing at INFO when it has nothing to
do (issue 26: 327 of 555 lines in 3.5 minutes were idle ticks), and one line
of its own when it delivered something. Beat and the webhooks worker pool as
the Procfile starts them, at INFO."""

import sys
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import pytest

from conftest import make_api_client
from events.tests.receiver import subscribe
from reconciliation.tests.test_webhook_isolation_e2e import service_env, started
from wallets.services import wallet_set_active
from wallets.tests.factories import WalletFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("migrated_groups")]


def test_an_idle_delivery_tick_logs_nothing_at_info_and_a_busy_one_logs_its_own_line(receiver, tmp_path, settings):
    settings.WEBHOOK_ALLOW_LOOPBACK = True
    env = service_env(tmp_path)
    python, celery = sys.executable, str(Path(sys.executable).with_name("celery"))
    logs = {"beat": tmp_path / "beat.log", "webhooks": tmp_path / "webhooks.log"}
    with ExitStack() as stack:
        beat = [celery, "-q", "-A", "wallet_project", "beat", "--loglevel=INFO"]
        stack.enter_context(started(beat, env, logs["beat"]))
        worker = [python, "-m", "wallet_project.worker", "webhooks", "--loglevel=INFO", "--concurrency=1"]
        stack.enter_context(started([*worker, "-n", f"idle-{uuid.uuid4().hex[:8]}@%h"], env, logs["webhooks"]))
        deadline = time.monotonic() + 60
        while "ready." not in logs["webhooks"].read_text():
            assert time.monotonic() < deadline, logs["webhooks"].read_text()
            time.sleep(0.1)
        time.sleep(3)  # six idle ticks (every 0.5 s here)
        idle = {name: path.read_text() for name, path in logs.items()}

        api = make_api_client("Treasury client")
        subscribe(api, receiver, types=["wallet.frozen"])
        wallet_set_active(wallet=WalletFactory(owner=api.user), is_active=False)
        while "webhooks: 1 new deliveries" not in logs["webhooks"].read_text():
            assert time.monotonic() < deadline + 60, logs["webhooks"].read_text()
            time.sleep(0.1)

    for name, text in idle.items():
        ticks = [line for line in text.splitlines() if "deliver_webhooks" in line or "deliveries" in line]
        assert not ticks, f"{name} logged an idle tick: {ticks}"
    assert receiver.accepted_ids()
