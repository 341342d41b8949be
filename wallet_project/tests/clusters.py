"""PgBouncer and a streaming replica of the local PostgreSQL, for the tests
and the benchmark: real servers on free ports, under a directory of their
own, stopped and removed afterwards.

- PgBouncer (Debian's, bin/ensure-test-tools installs it) in transaction
  pooling, in front of the primary, every database name passed through.
- A second PostgreSQL 15 cluster made a hot standby of the primary with
  pg_basebackup, streaming from it (no replication slot: a slot left behind
  by a killed run would hold WAL on the shared server forever).

PostgreSQL and PgBouncer refuse to run as root: as root (CI) both run as the
`postgres` user. The primary must accept replication connections from
127.0.0.1 (docs/operations.md; bin/ensure-test-tools adds the pg_hba.conf line).
"""

import configparser
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

PG_BINDIR = Path(os.environ.get("PG_BINDIR", "/usr/lib/postgresql/15/bin"))
PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
OPS_CONFIG = Path(__file__).resolve().parents[2] / "ops" / "pgbouncer" / "pgbouncer.ini"
SERVER_USER = "postgres"
# What a hot standby must have at least as much of as its primary, or it refuses to start.
STANDBY_MINIMUMS = (
    "max_connections",
    "max_worker_processes",
    "max_wal_senders",
    "max_prepared_transactions",
    "max_locks_per_transaction",
)


@dataclass(frozen=True)
class Address:
    host: str
    port: int
    user: str = "postgres"

    def connect(self, dbname: str = "postgres", **kwargs) -> psycopg.Connection:
        return psycopg.connect(
            host=self.host, port=self.port, user=self.user, dbname=dbname, autocommit=True, connect_timeout=5, **kwargs
        )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def as_server_user(args: list[str]) -> list[str]:
    return ["runuser", "-u", SERVER_USER, "--", *args] if os.geteuid() == 0 else args


def owned_directory(prefix: str) -> Path:
    """A fresh directory the servers' user owns."""
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        account = pwd.getpwnam(SERVER_USER)
        os.chown(directory, account.pw_uid, account.pw_gid)
    return directory


def run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(as_server_user(args), capture_output=True, text=True, **kwargs)  # noqa: S603
    if result.returncode:
        raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result


def wait_until_accepting(address: Address, dbname: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            address.connect(dbname).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@dataclass
class PgBouncer:
    """PgBouncer in transaction pooling in front of `primary`."""

    primary: Address
    pool_size: int = 20
    directory: Path = field(default_factory=lambda: owned_directory("wallet-pgbouncer-"))
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def address(self) -> Address:
        return Address("127.0.0.1", self.port, self.primary.user)

    def start(self) -> "PgBouncer":
        config = self.directory / "pgbouncer.ini"
        (self.directory / "userlist.txt").write_text(f'"{self.primary.user}" ""\n')
        # The deployment's own configuration (ops/pgbouncer, docker-compose.yml),
        # pointed at the primary and listening here; trust, as the local server does.
        ini = configparser.ConfigParser(interpolation=None)
        ini.read(OPS_CONFIG)
        ini["databases"] = {"*": f"host={self.primary.host} port={self.primary.port}"}
        ini["pgbouncer"].update(
            listen_addr="127.0.0.1",
            listen_port=str(self.port),
            auth_type="trust",
            auth_file=str(self.directory / "userlist.txt"),
            admin_users=self.primary.user,
            default_pool_size=str(self.pool_size),
            logfile=str(self.directory / "pgbouncer.log"),
        )
        with config.open("w") as out:
            ini.write(out)
        if os.geteuid() == 0:
            for path in self.directory.iterdir():
                shutil.chown(path, SERVER_USER)
        self.process = subprocess.Popen(  # noqa: S603
            as_server_user([PGBOUNCER, "-q", str(config)]),
            # Its log is pgbouncer.log in the directory.
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_until_accepting(self.address, "postgres", timeout=20)
        except psycopg.OperationalError:
            self.stop()
            raise
        return self

    def show(self, what: str) -> list[dict]:
        """SHOW `what` on PgBouncer's admin console (simple query protocol only)."""
        with psycopg.connect(
            host=self.address.host,
            port=self.port,
            user=self.primary.user,
            dbname="pgbouncer",
            autocommit=True,
            cursor_factory=psycopg.ClientCursor,
        ) as console:
            rows = console.execute(f"SHOW {what}")
            columns = [column.name for column in rows.description]
            return [dict(zip(columns, row, strict=True)) for row in rows.fetchall()]

    def server_pids(self, dbname: str) -> list[int]:
        """The PostgreSQL backends PgBouncer holds for `dbname`."""
        return [row["remote_pid"] for row in self.show("SERVERS") if row["database"] == dbname]

    def setting(self, name: str) -> str:
        (value,) = [row["value"] for row in self.show("CONFIG") if row["key"] == name]
        return value

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)  # PgBouncer's "shut down at once"
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        shutil.rmtree(self.directory, ignore_errors=True)


@dataclass
class Replica:
    """A hot standby of `primary`, streaming from it."""

    primary: Address
    directory: Path = field(default_factory=lambda: owned_directory("wallet-replica-"))
    port: int = field(default_factory=free_port)

    @property
    def address(self) -> Address:
        return Address("127.0.0.1", self.port, self.primary.user)

    @property
    def datadir(self) -> Path:
        return self.directory / "data"

    def create(self) -> "Replica":
        with self.primary.connect() as primary:
            minimums = {name: primary.execute(f"SHOW {name}").fetchone()[0] for name in STANDBY_MINIMUMS}
        run(
            [
                str(PG_BINDIR / "pg_basebackup"),
                *("-h", self.primary.host, "-p", str(self.primary.port), "-U", self.primary.user),
                *("-D", str(self.datadir), "-X", "stream", "--checkpoint=fast", "--no-sync"),
                # standby.signal and primary_conninfo: a streaming standby.
                "--write-recovery-conf",
            ],
            timeout=300,
        )
        # Debian keeps the primary's configuration outside its data directory,
        # so the copy has none: the standby gets its own.
        settings = {
            "port": self.port,
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.directory}'",
            "hba_file": f"'{self.directory}/pg_hba.conf'",
            "ident_file": f"'{self.directory}/pg_ident.conf'",
            "hot_standby": "on",
            "shared_buffers": "'32MB'",
            "fsync": "off",
            **minimums,
        }
        self._write("data/postgresql.conf", "".join(f"{name} = {value}\n" for name, value in settings.items()))
        self._write("pg_hba.conf", "local all all trust\nhost all all 127.0.0.1/32 trust\n")
        self._write("pg_ident.conf", "")
        return self.start()

    def _write(self, relative: str, text: str) -> None:
        run(["tee", str(self.directory / relative)], input=text)

    def start(self) -> "Replica":
        run([str(PG_BINDIR / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.directory / "log"), "-w", "start"])
        wait_until_accepting(self.address, "postgres")
        return self

    def stop(self) -> None:
        """Stop the server, as a crash or a network cut would take it away."""
        run([str(PG_BINDIR / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "-w", "stop"])

    def running(self) -> bool:
        return (self.datadir / "postmaster.pid").exists()

    def destroy(self) -> None:
        if self.running():
            self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def pause_replay(self) -> None:
        """WAL keeps arriving but is not applied: the replica falls behind."""
        with self.address.connect() as replica:
            replica.execute("SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        with self.address.connect() as replica:
            replica.execute("SELECT pg_wal_replay_resume()")

    def wait_for_replay(self, timeout: float = 30.0) -> None:
        """Until the replica has applied everything the primary has written so far."""
        with self.primary.connect() as primary:
            (target,) = primary.execute("SELECT pg_current_wal_lsn()").fetchone()
        deadline = time.monotonic() + timeout
        with self.address.connect() as replica:
            while not replica.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [target]).fetchone()[0]:
                assert time.monotonic() < deadline, f"the replica did not replay up to {target} in {timeout}s"
                time.sleep(0.02)
