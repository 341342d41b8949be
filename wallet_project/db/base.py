"""Django's PostgreSQL backend with a health check that costs no round trip.

CONN_HEALTH_CHECKS makes Django check a persistent connection before each
request reuses it, so a connection that died in between (a PostgreSQL restart,
an administrator's pg_terminate_backend) is replaced instead of failing the
request. Django's check is a `SELECT 1`: a round trip on every request. Here a
zero-timeout poll of the socket comes first: an idle connection receives
nothing, so a silent socket is alive; when PostgreSQL ends a session it sends an
error and closes the socket, which makes it readable, and only then does the
real `SELECT 1` decide.
"""

import select

from django.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        if self.connection is None or self.connection.closed:
            return False
        try:
            readable, _, _ = select.select([self.connection.fileno()], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable or super().is_usable()
