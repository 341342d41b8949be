"""Running the migrations back and forth in a test: what a migration test
starts from and how it leaves the database for the tests after it."""

from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def migrate(targets):
    """Migrate the test database to `targets` ([(app, migration name)]);
    the models as they were at those migrations (an Apps registry)."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def migrate_to_latest() -> None:
    """Every app at its latest migration again, as the other tests expect."""
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def migration_sql(app: str, name: str) -> list[str]:
    """The statements migration `name` of `app` runs forwards, in order (as
    `manage.py sqlmigrate` prints them)."""
    loader = MigrationExecutor(connection).loader
    return loader.collect_sql([(loader.graph.nodes[(app, name)], False)])


def _takes_the_table(statement: str) -> bool:
    """Whether `statement` takes its table's ACCESS EXCLUSIVE lock (every
    read waits), held to the migration's commit: a DROP INDEX that is not
    CONCURRENTLY, an ALTER TABLE that drops a constraint."""
    text = " ".join(statement.upper().split())
    if "CONCURRENTLY" in text:
        return False
    return text.startswith("DROP INDEX ") or (text.startswith("ALTER TABLE ") and " DROP CONSTRAINT " in text)


def builds_after_a_drop(statements: list[str]) -> list[str]:
    """The index builds (CREATE [UNIQUE] INDEX) of `statements` that come
    after a statement that took its table from readers (_takes_the_table):
    each would keep every read of the table waiting while it runs."""
    taken = False
    late = []
    for statement in statements:
        taken = taken or _takes_the_table(statement)
        if taken and statement.lstrip().upper().startswith(("CREATE INDEX ", "CREATE UNIQUE INDEX ")):
            late.append(statement)
    return late
