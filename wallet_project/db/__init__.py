"""The PostgreSQL backend (base.py), and helpers for code that runs plain SQL
and builds model instances from the rows."""


def in_model_order(model, names) -> list[str]:
    """The primary key and `names`, as the attnames Model.from_db expects for a
    row whose columns come in the model's field order (as .only() selects them)."""
    wanted = {model._meta.pk.attname, *names}
    return [f.attname for f in model._meta.concrete_fields if f.attname in wanted]


def statement_cursor(connection):
    """A cursor for one statement whose rows are all read before the next
    runs, not closed by the caller (use it without `with`).

    On this project's backend (wallet_project/db/base.py) one psycopg cursor
    reused for the connection's lifetime; on any other (Django's stock
    PostgreSQL backend) a new cursor(), which works the same, a little slower.
    """
    reused = getattr(connection, "statement_cursor", None)
    return reused() if reused is not None else connection.cursor()


def fetch(connection, statement: str, params) -> list[tuple]:
    """The rows of a statement that returns some (SELECT, RETURNING)."""
    cursor = statement_cursor(connection)
    cursor.execute(statement, params)
    return cursor.fetchall()


def run(connection, statement: str, params) -> None:
    """A statement that returns no rows. Kept apart from fetch because asking
    the cursor whether there are rows (its description) builds a column object
    per column: measurable on a path that runs on every request."""
    statement_cursor(connection).execute(statement, params)
