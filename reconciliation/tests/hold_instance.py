"""A second service instance for test_hold_faults.py: its own process, Django,
PostgreSQL connection and Redis, ending holds through the same service.

    python -m reconciliation.tests.hold_instance CLIENT_ID HOLD_ID...

Settings come from the environment (DATABASE_URL of the test database). It
prints "ready", waits for a line on stdin, voids each hold in turn under a
fresh key, and prints one JSON list: per hold, "VOIDED" or the refusal's code.
"""

import json
import sys
import uuid


def main(client_id: str, *hold_ids: str) -> None:
    import django

    django.setup()

    from django.contrib.auth import get_user_model

    from transfers.exceptions import HoldNotOpen
    from transfers.holds import hold_void

    client = get_user_model().objects.get(pk=client_id)
    print("ready", flush=True)
    sys.stdin.readline()
    outcomes = []
    for hold_id in hold_ids:
        try:
            outcomes.append(
                hold_void(client=client, hold_id=uuid.UUID(hold_id), idempotency_key=str(uuid.uuid4())).hold.status
            )
        except HoldNotOpen as refusal:
            outcomes.append(refusal.default_code)
    print(json.dumps(outcomes), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
